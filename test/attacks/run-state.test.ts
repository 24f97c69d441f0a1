// Another local user against a server started by pg_ctl through the wrapper (the launcher runs as
// the server's user, without XDG_RUNTIME_DIR): it makes /tmp/pg_seccomp-<uid> first, with links
// named as the launcher's files pointing at the server's data files. Before, the launcher wrote
// through them (a table's data file emptied, postgresql.auto.conf overwritten). Now it never uses
// a directory it did not make itself, and the data files are intact. Throwaway users for both.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { createCluster, destroyCluster, lookupUser, postmasterPid, query, type Cluster, type OsUser } from "../../src/postgres/cluster.js";
import { dataDirKey, ensureRunStateDir, writeStateFile } from "../../src/host/run-state.js";
import { BIN, withExecDeniedGlobally } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const BIN_DIR = "/usr/lib/postgresql/15/bin";
const WRAPPER = repoPath("contrib/pg_ctl/postgres-seccomp");
const skip = process.getuid?.() !== 0 ? "needs root (useradd, pg_ctl as another user)" : !existsSync(join(BIN_DIR, "postgres")) ? "PostgreSQL 15 is not installed" : false;
const tag = `${process.pid % 100000}`;
const victimName = `pgsv${tag}`;
const attackerName = `pgsa${tag}`;

let victim: OsUser;
let attacker: OsUser;
let cluster: Cluster;
let policyDir: string;
let squat: string;
let oldRecord: string | undefined;

function useradd(name: string): OsUser {
  const r = spawnSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return lookupUser(name);
}

before(async () => {
  if (skip) return;
  victim = useradd(victimName);
  attacker = useradd(attackerName);
  cluster = await createCluster({ binDir: BIN_DIR, user: victim });
  policyDir = mkdtempSync(join(tmpdir(), "pg_seccomp-squat-policy-"));
  chmodSync(policyDir, 0o755);
  // Global lists only: the wrapper run as the server's user refuses per-context rules.
  writeFileSync(join(policyDir, "p.conf"), withExecDeniedGlobally(readFileSync(hostProfilePath(), "utf8")), { mode: 0o644 });
  chmodSync(join(policyDir, "p.conf"), 0o644);
});

after(() => {
  if (skip) return;
  if (cluster) {
    pgCtl("stop", "-m", "immediate");
    destroyCluster(cluster);
  }
  if (squat) rmSync(squat, { recursive: true, force: true });
  if (oldRecord) rmSync(oldRecord, { force: true });
  for (const d of readdirSync("/tmp")) if (victim && d.startsWith(`pg_seccomp-${victim.uid}-`)) rmSync(join("/tmp", d), { recursive: true, force: true });
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
  spawnSync("userdel", [victimName]);
  spawnSync("userdel", [attackerName]);
});

function pgCtl(...args: string[]) {
  return spawnSync("runuser", [
    "-u", victim.name, "--", "env", "-u", "XDG_RUNTIME_DIR", `PG_SECCOMP=${process.execPath} ${BIN}`, `PG_SECCOMP_POLICY=${join(policyDir, "p.conf")}`,
    join(BIN_DIR, "pg_ctl"), "-D", cluster.dataDir, "-l", join(cluster.root, "server.log"), ...args,
  ], { encoding: "utf8", cwd: cluster.root, timeout: 120_000 });
}

const asAttacker = (...cmd: string[]) => {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { uid: attacker.uid, gid: attacker.gid, encoding: "utf8" });
  assert.equal(r.status, 0, `${cmd.join(" ")}: ${r.stderr}`);
};

test("another local user's /tmp/pg_seccomp-<uid> with links to the data files: not used, the data files intact, the log still found", { skip }, async () => {
  // A table of 1000 rows, written to disk, with the server started without the wrapper.
  assert.equal(pgCtl("-w", "start").status, 0);
  query(cluster, "create table t as select g from generate_series(1, 1000) g; checkpoint");
  const relFile = join(cluster.dataDir, query(cluster, "select pg_relation_filepath('t')"));
  assert.equal(pgCtl("-w", "stop").status, 0);
  const autoConf = join(cluster.dataDir, "postgresql.auto.conf");
  const before = { rel: readFileSync(relFile), auto: readFileSync(autoConf, "utf8") };

  // The attack: the directory first, with a link under every name the launcher used to write.
  squat = `/tmp/pg_seccomp-${victim.uid}`;
  rmSync(squat, { recursive: true, force: true });
  asAttacker("mkdir", "-m", "0777", squat);
  const key = dataDirKey(resolve(cluster.dataDir));
  const links: Record<string, string> = {
    [`last-${key}.json`]: relFile, [`last-${key}.json.tmp`]: relFile, [`violations-${key}.jsonl`]: autoConf,
    [`client-${key}-table.json`]: autoConf, [`client-${key}-table.json.tmp`]: autoConf,
  };
  for (const [name, target] of Object.entries(links)) asAttacker("ln", "-s", target, join(squat, name));

  // And an older run of the same data directory by a root launcher (issue 18: `log` showed that
  // one and hid the running server's denials).
  const oldLog = join(policyDir, "old.jsonl");
  writeFileSync(oldLog, JSON.stringify({ time: "2020-01-01T00:00:00.000Z", pid: 4242, process: "old", context: "session", syscall: "oldcall", nr: 1, args: [], action: "error", errno: 1 }) + "\n", { mode: 0o644 });
  writeStateFile(ensureRunStateDir(), `last-${key}.json`, JSON.stringify({ dataDir: resolve(cluster.dataDir), logPath: oldLog, policyPath: join(policyDir, "p.conf"), postmasterPid: 4242, startedAt: "2020-01-01T00:00:00.000Z" }));
  oldRecord = join(ensureRunStateDir(), `last-${key}.json`);

  const r = pgCtl("-p", WRAPPER, "-w", "-t", "60", "start");
  const log = readFileSync(join(cluster.root, "server.log"), "utf8");
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}${log}`);
  assert.match(log, new RegExp(`/tmp/pg_seccomp-${victim.uid}: is owned by uid ${attacker.uid}, not uid ${victim.uid}: not used; the run state is in /tmp/pg_seccomp-${victim.uid}-[0-9a-f]{12} instead`));
  const pm = postmasterPid(cluster.dataDir)!;
  assert.ok(pm > 0);
  assert.equal(query(cluster, "select count(*) from t"), "1000");
  // A denied call, so the log has a record to find.
  assert.notEqual(spawnSync(join(BIN_DIR, "psql"), ["-X", "-h", cluster.socketDir, "-p", String(cluster.port), "-U", "postgres", "-d", "postgres", "-c", "copy (select 1) to program 'true'"]).status, 0);

  // Nothing was written through the links; they are still the attacker's links, untouched.
  assert.deepEqual(readFileSync(relFile), before.rel, "the table's data file is intact");
  assert.equal(readFileSync(autoConf, "utf8"), before.auto, "postgresql.auto.conf is intact");
  for (const [name, target] of Object.entries(links)) {
    assert.ok(lstatSync(join(squat, name)).isSymbolicLink());
    assert.equal(readlinkSync(join(squat, name)), target);
  }
  assert.deepEqual(readdirSync(squat).sort(), Object.keys(links).sort(), "nothing new in the attacker's directory");

  // The launcher's own directory: the server's user's, 0700.
  const own = readdirSync("/tmp").filter((d) => d.startsWith(`pg_seccomp-${victim.uid}-`));
  assert.equal(own.length, 1, own.join(", "));
  const st = lstatSync(join("/tmp", own[0]!));
  assert.equal(st.uid, victim.uid);
  assert.equal(st.mode & 0o777, 0o700);
  assert.ok(existsSync(join("/tmp", own[0]!, `${pm}.json`)), "the run state is there");

  // `pg_seccomp log` as root finds the running server's log there, and the denial in it.
  let found = "";
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !/execve/.test(found)) {
    found = spawnSync(process.execPath, [BIN, "log", "-D", cluster.dataDir, "--json"], { encoding: "utf8" }).stdout;
    await new Promise((res) => setTimeout(res, 200));
  }
  assert.match(found, /"syscall": ?"execve"/);
  assert.doesNotMatch(found, /oldcall/, "not the older root run's log");

  assert.equal(pgCtl("-w", "stop", "-m", "fast").status, 0);
  // Stopped: the last run is the wrapper's, newer than root's record.
  const after = spawnSync(process.execPath, [BIN, "log", "-D", cluster.dataDir, "--json"], { encoding: "utf8" }).stdout;
  assert.match(after, /"syscall": ?"execve"/);
  assert.doesNotMatch(after, /oldcall/);
  assert.equal(readFileSync(autoConf, "utf8"), before.auto);
  // The table survives a restart, its 1000 rows there.
  assert.equal(pgCtl("-w", "start").status, 0);
  assert.equal(query(cluster, "select count(*) from t"), "1000");
  assert.equal(pgCtl("-w", "stop", "-m", "fast").status, 0);
});
