// Attacks on the paths the root launcher touches, by the server's OS user (files planted as
// `postgres`) and a superuser with SQL only (the set_client_filter knock), against a real
// `pg_seccomp run` server. Each attack must fail, the server must keep serving, and nothing from
// a root-only file may appear in the launcher's output. All of these worked before the launcher
// opened such paths through safe-fs.ts.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams } from "node:child_process";
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, query, type Cluster } from "../../src/postgres/cluster.js";
import { CLIENT_FILTER_KNOCK } from "../../src/compile/compose.js";
import { BIN, integrationSkip, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");
const SECRET = `ROOT-ONLY-SECRET-${process.pid}`;

let cluster: Cluster;
let server: RunningServer;
let policy: string;
/** A directory only root can enter, holding files the server's user must never see. */
let vault: string;

before(async () => {
  if (skip) return;
  vault = mkdtempSync(join(tmpdir(), "pg_seccomp-vault-"));
  chmodSync(vault, 0o700);
  writeFileSync(join(vault, "not-json"), `${SECRET} this is not JSON\n`, { mode: 0o600 });
  writeFileSync(join(vault, "json"), JSON.stringify({ default: null, allow: null, log: null, error: SECRET.replace(/-/g, "_"), kill: null }), { mode: 0o600 });
  cluster = await newCluster();
  // As test/sql.test.ts: alice may exec, and narrows herself with set_client_filter.
  policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\nset_client_filter = on\n");
  server = await startReady(cluster, ["--policy", policy]);
  query(cluster, "create role alice login in role pg_execute_server_program");
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const r = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  query(cluster, "grant execute on function seccomp.set_client_filter(text, text, text, text, text) to alice; grant usage on schema seccomp to alice");
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
  if (vault) rmSync(vault, { recursive: true, force: true });
});

/** An interactive psql session: statements go in one by one, in the same backend. */
class Session {
  private out = "";
  private n = 0;
  private readonly proc: ChildProcessWithoutNullStreams;
  constructor(c: Cluster, role = "postgres") {
    this.proc = spawn(join(c.binDir, "psql"), ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-d", "postgres"], {
      env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: role },
    });
    this.proc.stdout.on("data", (d: Buffer) => (this.out += d.toString()));
    this.proc.stderr.on("data", (d: Buffer) => (this.out += d.toString()));
  }
  /** Sends SQL; resolves with what psql printed for it. */
  async send(sql: string, timeoutMs = 20_000): Promise<string> {
    const mark = `__done_${++this.n}__`;
    const from = this.out.length;
    this.proc.stdin.write(`${sql}\n\\echo ${mark}\n`);
    await waitFor(() => this.out.includes(mark, from), timeoutMs, `psql to answer ${JSON.stringify(sql)}`);
    return this.out.slice(from, this.out.indexOf(mark, from));
  }
  async close(): Promise<void> {
    this.proc.stdin.end();
    await new Promise((r) => this.proc.once("exit", r));
  }
}

const asPostgres = (cmd: string, ...args: string[]) => {
  const r = spawnSync(cmd, args, { uid: cluster.user.uid, gid: cluster.user.gid, encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd} ${args.join(" ")}: ${r.stderr}`);
};
const spool = () => join(cluster.dataDir, "pg_seccomp");
const knock = `select pg_read_file('/dev/null', ${CLIENT_FILTER_KNOCK.toString()}, 1, false);`;

/**
 * Plants something as the server's user under the session's request name, knocks, and checks:
 * refused, still serving (this session and a new one), nothing secret in the launcher's output.
 */
async function attack(plant: (request: string) => void, refusal: RegExp): Promise<string> {
  const s = new Session(cluster);
  try {
    const pid = Number((await s.send("select pg_backend_pid();")).trim());
    assert.ok(pid > 0);
    plant(join(spool(), `${pid}.json`));
    const before = server.stderr().length;
    const t0 = Date.now();
    const answer = await s.send(knock);
    assert.ok(Date.now() - t0 < 10_000, "the launcher answers at once (it never waits on a file)");
    assert.match(answer, /ERROR/, "the knock fails");
    await waitFor(() => server.stderr().includes(`set_client_filter from pid ${pid} refused`, before), 10_000, "the refusal");
    const said = server.stderr().slice(before);
    assert.match(said, refusal);
    assert.match(await s.send("select 'still serving';"), /still serving/);
    assert.equal(query(cluster, "select 1"), "1");
    assert.ok(server.alive());
    assert.doesNotMatch(server.stderr(), new RegExp(SECRET), "no root-only content in the launcher's output");
    assert.doesNotMatch(server.stderr(), new RegExp(SECRET.replace(/-/g, "_")));
    return said;
  } finally {
    await s.close();
  }
}

test("baseline: set_client_filter works on this server, through the same session helper", { skip }, async () => {
  const s = new Session(cluster, "alice");
  try {
    const before = server.stderr().length;
    // The global lists (a request NULL lists cannot express without conflicts here): it goes in,
    // and a second call in the same session is refused as "once per session".
    assert.doesNotMatch(await s.send("select seccomp.set_client_filter(NULL, '*', '', '', '*');"), /ERROR/, server.stderr());
    assert.equal(spawnSync("ls", ["-A", spool()], { encoding: "utf8" }).stdout, "", "the request was consumed");
    assert.match(await s.send("select seccomp.set_client_filter(NULL, '*', '', '', '*');"), /ERROR/);
    assert.match(server.stderr().slice(before), /refused: Client filter may only be loaded once/);
  } finally {
    await s.close();
  }
  const st = lstatSync(spool());
  assert.ok(st.isDirectory() && st.uid === cluster.user.uid && (st.mode & 0o777) === 0o700);
});

test("spool: a link to a root-only file that is not JSON is not read (JSON.parse used to quote it)", { skip }, async () => {
  await attack((req) => asPostgres("ln", "-s", join(vault, "not-json"), req), /symbolic link/);
  assert.equal(readFileSync(join(vault, "not-json"), "utf8").startsWith(SECRET), true);
});

test("spool: a link to a root-only JSON request is not read (its list used to be quoted as an unknown syscall)", { skip }, async () => {
  await attack((req) => asPostgres("ln", "-s", join(vault, "json"), req), /symbolic link/);
});

test("spool: links to /dev/kmsg and /dev/zero do not block or exhaust the launcher", { skip }, async () => {
  await attack((req) => asPostgres("ln", "-s", "/dev/kmsg", req), /symbolic link/);
  await attack((req) => asPostgres("ln", "-s", "/dev/zero", req), /symbolic link/);
});

test("spool: a FIFO does not block the launcher", { skip }, async () => {
  await attack((req) => asPostgres("mkfifo", req), /not a regular file/);
});

test("spool: a huge sparse file and a file over 4 KiB are refused unread", { skip }, async () => {
  await attack((req) => asPostgres("truncate", "-s", "64G", req), /too large/);
  await attack((req) => {
    writeFileSync(req, " ".repeat(5000) + "{}", { mode: 0o644 });
    asPostgresOwn(req);
  }, /too large/);
});

const asPostgresOwn = (path: string) => chownSync(path, cluster.user.uid, cluster.user.gid);

test("spool: a request file the server's user does not own is refused", { skip }, async () => {
  await attack((req) => writeFileSync(req, JSON.stringify({ default: null, allow: null, log: null, error: "execve", kill: null }), { mode: 0o644 }), /owned by uid 0/);
});

test("spool: replacing the spool directory with a link to a root-only directory reads and deletes nothing there", { skip }, async () => {
  const moved = `${spool()}.moved`;
  asPostgres("mv", spool(), moved);
  asPostgres("ln", "-s", vault, spool());
  try {
    const said = await attack((req) => {
      // A root file of exactly the request's name in the directory the link points to.
      writeFileSync(join(vault, req.split("/").pop()!), JSON.stringify({ default: null, allow: null, log: null, error: "execve", kill: null }), { mode: 0o600 });
    }, /does not exist/);
    assert.doesNotMatch(said, new RegExp(vault));
    const victims = spawnSync("ls", [vault], { encoding: "utf8" }).stdout.split("\n").filter((n) => n.endsWith(".json"));
    assert.equal(victims.length, 1, "the root-only file is still there");
    assert.equal(statSync(vault).uid, 0);
  } finally {
    asPostgres("rm", spool());
    asPostgres("mv", moved, spool());
  }
});

test("spool: a spool that is a link when the server starts is refused for the run, and its target is not chowned", { skip }, async () => {
  const other = await newCluster();
  const target = mkdtempSync(join(tmpdir(), "pg_seccomp-target-"));
  chmodSync(target, 0o700);
  writeFileSync(join(target, "keep"), SECRET);
  asPostgres("ln", "-s", target, join(other.dataDir, "pg_seccomp"));
  const s = await startReady(other, ["--policy", policy]);
  try {
    await waitFor(() => /set_client_filter is off for this run/.test(s.stderr()), 10_000, "the note");
    assert.match(s.stderr(), /data\/pg_seccomp: is a symbolic link or not a directory/);
    assert.equal(statSync(target).uid, 0, "the link's target keeps its owner");
    assert.equal(statSync(join(target, "keep")).uid, 0);
    assert.equal(query(other, "select 1"), "1");
  } finally {
    await stop(s);
    destroyCluster(other);
    rmSync(target, { recursive: true, force: true });
  }
  assert.doesNotMatch(s.stderr(), new RegExp(SECRET));
});

/** `run` with these arguments against the shared cluster's data directory; it must refuse before starting. */
function runRefuses(args: string[], why: RegExp): void {
  const other = join(cluster.root, "never-started");
  const r = spawnSync(process.execPath, [BIN, "run", ...args, "--", join(cluster.binDir, "postgres"), "-D", other], { encoding: "utf8", timeout: 30_000 });
  assert.notEqual(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stderr, why);
  assert.doesNotMatch(r.stderr, /\n\s+at /, "one message, no stack trace");
  assert.equal(existsSync(other), false, "nothing started");
}

test("run --log in a directory the server's user owns, in /tmp, or through a link is refused before the server starts", { skip }, () => {
  const theirs = join(cluster.root, "logs");
  mkdirSync(theirs);
  asPostgresOwn(theirs);
  runRefuses(["--policy", policy, "--log", join(theirs, "v.jsonl")], /refusing the violation log[^\n]*\n\s+\S+: directory is owned by the server's user postgres/);
  const sticky = mkdtempSync(join(tmpdir(), "pg_seccomp-sticky-"));
  chmodSync(sticky, 0o1777);
  runRefuses(["--policy", policy, "--log", join(sticky, "v.jsonl")], /world-writable \(the sticky bit/);
  const mine = mkdtempSync(join(tmpdir(), "pg_seccomp-logs-"));
  chmodSync(mine, 0o755);
  spawnSync("ln", ["-s", join(vault, "not-json"), join(mine, "v.jsonl")]);
  runRefuses(["--policy", policy, "--log", join(mine, "v.jsonl")], /is a symbolic link/);
  assert.ok(readFileSync(join(vault, "not-json"), "utf8").startsWith(SECRET));
  assert.equal(statSync(join(vault, "not-json")).uid, 0);
  rmSync(sticky, { recursive: true, force: true });
  rmSync(mine, { recursive: true, force: true });
  assert.equal(query(cluster, "select 1"), "1", "the running server is unaffected");
});

test("run refuses a policy reached through the server's user's link, or including a file it could create", { skip }, () => {
  const theirs = join(cluster.root, "conf");
  mkdirSync(theirs);
  asPostgresOwn(theirs);
  asPostgres("ln", "-s", policy, join(theirs, "p.conf"));
  runRefuses(["--policy", join(theirs, "p.conf")], /refusing the policy[\s\S]*owned by the server's user postgres/);
  const withInclude = writePolicy(`${profile}\ninclude_if_exists '${theirs}/later.conf'\n`);
  runRefuses(["--policy", withInclude], /could create later.conf there/);
  assert.equal(query(cluster, "select 1"), "1");
});
