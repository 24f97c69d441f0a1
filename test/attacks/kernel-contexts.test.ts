// Attack library: code loaded into a backend, and the server's OS user, against what the kernel
// holds for each process (docs/design.md, "Contexts held by the kernel"). A thread that drops its
// client socket and retitles itself is still its session; a flood of threads in one backend does
// not decide another session's call; /proc/<pid>/mem of the postmaster cannot be opened by a
// backend or by the server's user (the server is non-dumpable); and once a process is classified,
// what its context denies stays denied while the supervisor is stopped (decided in the kernel).
// The backend-side code is a small C library (test/fixtures/attack/kernel-contexts.c) compiled
// here with cc and LOADed by a superuser: its constructor runs in the backend.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";
import type { ViolationEvent } from "../../src/host/violation-event.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : false);
const profile = readFileSync(hostProfilePath(), "utf8");
const COPY = (tag: string) => `copy (select 1) to program 'cat > /dev/null' -- ${tag}`;

let cluster: Cluster;
let dir: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const s = await startReady(cluster, []);
  query(cluster, "create role etl superuser login");
  await stop(s);
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-kattack-"));
  chmodSync(dir, 0o755);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Compiles the backend-side attack with `defines`; returns the library and its results file (writable by the backend). */
function backendCode(name: string, defines: string[]): { lib: string; out: string } {
  const out = join(dir, `${name}.txt`);
  const lib = join(dir, `${name}.so`);
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-DOUT="${out}"`, ...defines, "-Wl,-z,nodelete", "-o", lib, repoPath("test/fixtures/attack/kernel-contexts.c"), "-lpthread"], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  spawnSync("install", ["-m", "0666", "/dev/null", out]);
  return { lib, out };
}

function results(out: string): Record<string, string> {
  return Object.fromEntries(readFileSync(out, "utf8").trim().split("\n").filter(Boolean).map((l) => {
    const [k, ...v] = l.split(" ");
    return [k!, v.join(" ")];
  }));
}

/** seccomp.* in the cluster's postgres database, as the docs install it. */
function sqlInstall(): void {
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const installed = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8" });
  assert.equal(installed.status, 0, installed.stderr);
}

/** One psql session as postgres running `-c` arguments in order, going on after an error. */
function psqlCommands(args: string[]) {
  return spawnSync(join(cluster.binDir, "psql"), ["-X", "-v", "ON_ERROR_STOP=0", ...args], {
    encoding: "utf8", env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" },
  });
}

function events(path: string): ViolationEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent);
}

/** A session that LOADs `lib` and then stays connected for `seconds` (psql goes on after LOAD's error). */
function sessionWith(lib: string, seconds: number, role = "postgres") {
  const p = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-c", `load '${lib}'`, "-c", `select pg_sleep(${seconds})`], {
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: role, PGDATABASE: "postgres" },
    stdio: "ignore",
  });
  return { proc: p, done: new Promise<void>((r) => p.on("exit", () => r())) };
}

test("a thread without the client socket, retitled checkpointer, is still its session: its exec is denied", { skip }, async () => {
  const { lib, out } = backendCode("thread", ["-DTHREAD_ESCAPE"]);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\n");
  const log = logFile("kattack-thread.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    const r = psql(cluster, `load '${lib}'`);
    assert.match(r.stderr, /magic block/, "the constructor ran and returned");
    const got = results(out);
    assert.ok(got.thread_exec !== undefined, `the thread reported: ${readFileSync(out, "utf8")}`);
    assert.notEqual(got.thread_exec, "ENOENT", "the thread's execve ran (classified by its title, as a checkpointer)");
    assert.notEqual(got.thread_exec, "ok");
    assert.equal(query(cluster, "select 1"), "1", "the server keeps serving");
  } finally {
    await stop(s);
  }
  const execs = events(log).filter((e) => e.syscall === "execve" && e.action === "error");
  assert.ok(execs.some((e) => e.context === "session" && e.role === "postgres"), `logged as the session's: ${JSON.stringify(execs)}`);
  assert.ok(!events(log).some((e) => e.context === "checkpointer"), "nothing was decided as a checkpointer's");
});

test("100 threads of one backend flooding a logged call do not decide another session's allowed call", { skip }, async () => {
  const { lib, out } = backendCode("flood", ["-DFLOOD=100", "-DFLOOD_SECONDS=15"]);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.etl = '*, execve'\n");
  const log = logFile("kattack-flood.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  const flood = sessionWith(lib, 16);
  try {
    await waitFor(() => /flood 100/.test(readFileSync(out, "utf8")), 10_000, "the flood to start");
    const refused: string[] = [];
    for (let i = 0; i < 10; i++) {
      const r = psql(cluster, COPY(`etl ${i}`), { role: "etl" });
      if (!r.ok) refused.push(r.stderr.trim());
    }
    assert.deepEqual(refused, [], "etl may exec, flood or not");
    assert.ok(s.alive());
  } finally {
    flood.proc.kill("SIGINT");
    await flood.done;
    await stop(s);
  }
  if (process.env.KCTX_DEBUG) console.error(s.stderr().split("\n").filter((l) => /pg_seccomp|terminated|FATAL|PANIC/.test(l)).join("\n"));
  const all = events(log);
  const getcpu = all.filter((e) => e.syscall === "getcpu");
  assert.ok(getcpu.some((e) => (e.count ?? 0) > 0), "the flood's calls past the rate limit are summed, not dropped");
  assert.ok(!all.some((e) => e.role === "etl" && e.syscall === "execve" && e.action === "error"), "no exec of etl was refused");
});

test("the server is non-dumpable: /proc/<postmaster>/mem opens neither for a backend nor for the server's OS user", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(profile)]);
  try {
    const pm = postmasterPid(cluster.dataDir)!;
    assert.ok(existsSync(`/proc/${pm}`), `the postmaster ${pm} of postmaster.pid is alive\n${s.stderr().slice(-3000)}`);
    // The kernel gives /proc/<pid>/ files of a non-dumpable process to root.
    assert.equal(statSync(`/proc/${pm}/mem`).uid, 0, "the postmaster's /proc files belong to root");
    // A backend (the server's code, as a superuser can make it read any file).
    const r = psql(cluster, `select pg_read_binary_file('/proc/${pm}/mem', 4096, 1)`);
    assert.equal(r.ok, false);
    assert.match(r.stderr, /Permission denied/, "the open itself is refused (not a read of unmapped memory)");
    // The server's OS user, from outside the server (no filter at all).
    const w = spawnSync("sh", ["-c", `exec 3<>/proc/${pm}/mem && echo opened`], { uid: cluster.user.uid, gid: cluster.user.gid, encoding: "utf8" });
    assert.notEqual(w.stdout.trim(), "opened", "the server's OS user opened the postmaster's memory for writing");
    assert.match(w.stderr, /Permission denied|Operation not permitted/);
    // Every process the postmaster forked inherits it (checkpointer, walwriter, ...).
    const children = readFileSync(`/proc/${pm}/task/${pm}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    assert.ok(children.length > 0);
    for (const c of children) assert.equal(statSync(`/proc/${c}/mem`).uid, 0, `child ${c} is non-dumpable too`);
  } finally {
    await stop(s);
  }
});

test("server_dumpable = on leaves the server dumpable, as before", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nserver_dumpable = on\n")]);
  try {
    const pm = postmasterPid(cluster.dataDir)!;
    assert.equal(statSync(`/proc/${pm}/mem`).uid, cluster.user.uid);
  } finally {
    await stop(s);
  }
});

test("once classified, a session's denial holds in the kernel while the supervisor is stopped", { skip }, async () => {
  const trigger = join(dir, "go");
  rmSync(trigger, { force: true });
  const { lib, out } = backendCode("held", [`-DTRIGGER="${trigger}"`]);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve, getresuid'\n");
  const s = await startReady(cluster, ["--policy", policy, "--log", logFile("kattack-held.jsonl")]);
  const session = sessionWith(lib, 20);
  let stopped = false;
  try {
    await waitFor(() => /armed 1/.test(readFileSync(out, "utf8")), 10_000, "the library to be loaded");
    await new Promise((r) => setTimeout(r, 500)); // the context's filter goes in right after classification
    process.kill(s.proc.pid!, "SIGSTOP"); // the launcher: main thread and supervisor
    stopped = true;
    writeFileSync(trigger, "");
    await waitFor(() => /getresuid/.test(readFileSync(out, "utf8")), 1500, "the call to be answered while the supervisor is stopped");
  } finally {
    if (stopped) process.kill(s.proc.pid!, "SIGCONT");
    session.proc.kill("SIGINT");
    await session.done;
    await stop(s);
  }
  const [result, ms] = (results(out).getresuid ?? "").split(" ");
  assert.notEqual(result, "ok", "getresuid ran in a session");
  assert.ok(Number(ms) < 1000, `decided in the kernel, not held for the supervisor (${ms} ms)`);
});

test("a filter a backend installs itself (prctl, not seccomp) that answers seccomp() with 0 does not void its context's filter", { skip }, async () => {
  const trigger = join(dir, "go-void");
  rmSync(trigger, { force: true });
  const { lib, out } = backendCode("void", ["-DVOID_INJECTION", `-DTRIGGER="${trigger}"`]);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve, getresuid'\n");
  const s = await startReady(cluster, ["--policy", policy, "--log", logFile("kattack-void.jsonl")]);
  const session = sessionWith(lib, 20);
  let stopped = false;
  try {
    await waitFor(() => /armed 1/.test(readFileSync(out, "utf8")), 10_000, "the library to be loaded");
    await new Promise((r) => setTimeout(r, 500));
    process.kill(s.proc.pid!, "SIGSTOP");
    stopped = true;
    writeFileSync(trigger, "");
    await waitFor(() => /getresuid/.test(readFileSync(out, "utf8")), 1500, "the call to be answered while the supervisor is stopped").catch(() => undefined);
  } finally {
    if (stopped) process.kill(s.proc.pid!, "SIGCONT");
    session.proc.kill("SIGINT");
    await session.done;
    await stop(s);
  }
  const got = results(out);
  if (process.env.KCTX_DEBUG) console.error(readFileSync(out, "utf8"), s.stderr().split("\n").filter((l) => /pg_seccomp/.test(l)).join("\n"));
  // Either the backend could not install its own filter, or the launcher saw that its injection
  // installed nothing and killed the backend (fail closed); never a backend whose context the
  // kernel does not hold.
  if (got.void === "ok" && got.getresuid !== undefined) {
    const [result, ms] = got.getresuid.split(" ");
    assert.notEqual(result, "ok", "getresuid ran in a session");
    assert.ok(Number(ms) < 1000, `decided in the kernel, not held for the supervisor (${ms} ms): the injection was void`);
  }
  assert.ok(got.void !== "ok" || /cannot be given its context in the kernel/.test(s.stderr()) || got.getresuid !== undefined, `the backend's own filter went in and the launcher said nothing: ${readFileSync(out, "utf8")}`);
});

test("set_client_filter narrows every thread of the session: a thread started before it cannot make the call it denies", { skip }, async () => {
  // In a directory the server's user may create the trigger in.
  const shared = mkdtempSync(join(dir, "client-"));
  chmodSync(shared, 0o1777);
  const trigger = join(shared, "go");
  const { lib, out } = backendCode("client", [`-DTRIGGER="${trigger}"`]);
  // getresuid is only logged for sessions: the client filter is what denies it.
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nset_client_filter = on\n"), "--log", logFile("kattack-client.jsonl")]);
  try {
    sqlInstall();
    // One session: the library's thread starts and waits; the session narrows itself; the
    // backend itself writes the trigger (COPY TO a file, as a superuser may); the thread calls.
    const r = psqlCommands([
      "-c", `load '${lib}'`,
      "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'getresuid', NULL) as answer",
      "-c", `copy (select 1) to '${trigger}'`,
      "-c", "select pg_sleep(1)",
    ]);
    const said = r.stdout + r.stderr;
    assert.match(said, /^ OK$/m, `set_client_filter said OK\n${said}\n${s.stderr()}`);
    assert.match(said, /^COPY 1$/m, said);
  } finally {
    await stop(s);
  }
  const [result] = (results(out).getresuid ?? "").split(" ");
  assert.ok(result !== undefined && result !== "", `the thread reported: ${readFileSync(out, "utf8")}`);
  assert.notEqual(result, "ok", "a thread of the narrowed session made the call its client filter denies");
});

test("set_client_filter in a backend whose threads' filters diverged is refused, never half-applied", { skip }, async () => {
  const { lib, out } = backendCode("diverge", ["-DDIVERGE"]);
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nset_client_filter = on\n"), "--log", logFile("kattack-diverge.jsonl")]);
  try {
    sqlInstall();
    const r = psqlCommands([
      "-c", `load '${lib}'`,
      "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'getresuid', NULL) as answer",
    ]);
    const said = r.stdout + r.stderr;
    assert.equal(results(out).diverged, "ok", readFileSync(out, "utf8"));
    assert.doesNotMatch(said, /^ OK$/m, `set_client_filter said OK for a process it could not narrow whole\n${said}`);
    assert.match(said, /ERROR:  failed to load client seccomp filter/, said);
  } finally {
    await stop(s);
  }
});
