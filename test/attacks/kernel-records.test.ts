// The kernel's seccomp records (kills, client-filter denials) against a real `pg_seccomp run`
// server: a call the policy kills in the kernel reaches `pg_seccomp log` with its context and
// role, and the server's log names it; a record the server's OS user forges (a logging filter on
// a process of its own, outside the server) is never attributed to the server, only counted.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync, chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";
import type { ViolationEvent } from "../../src/host/violation-event.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip() || (spawnSync("sh", ["-c", "ls /usr/lib/postgresql/15/lib/plperl.so"]).status !== 0 ? "plperl for PostgreSQL 15 is not installed" : false);
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let server: RunningServer;
let scratch: string;

before(async () => {
  if (skip) return;
  cluster = await newCluster();
  // The starter profile kills kexec_load (in @privileged, reachable from nothing: a reachable mount is denied by name with EPERM) in the kernel; sessions may not exec (so a COPY TO PROGRAM
  // goes to the supervisor, which classifies the session first).
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n");
  server = await startReady(cluster, ["--policy", policy]);
  scratch = mkdtempSync(join(tmpdir(), "pg_seccomp-forge-"));
  chmodSync(scratch, 0o755);
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function logJson(): ViolationEvent[] {
  const r = spawnSync(process.execPath, [BIN, "log", "-D", cluster.dataDir, "--json"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const text = r.stdout.trim();
  if (!text) return [];
  return text.startsWith("[") ? (JSON.parse(text) as ViolationEvent[]) : text.split("\n").map((l) => JSON.parse(l) as ViolationEvent);
}

// First: the kill of a backend below makes the postmaster restart every session.
test("a call the policy kills in a program a session runs (COPY TO PROGRAM's perl) names the program, its session and role", { skip }, async () => {
  query(cluster, "do $$ begin if not exists (select from pg_roles where rolname = 'alice') then create role alice login in role pg_execute_server_program; end if; end $$");
  const r = psql(cluster, `copy (select 1) to program 'perl -e "syscall(246, 0, 0, 0, 0, 0)"'`, { role: "alice" });
  assert.equal(r.ok, false, "the program was killed");
  assert.match(r.stderr, /signal 31|exit code 159|Bad system call/, r.stderr);
  await waitFor(() => logJson().some((e) => e.syscall === "kexec_load" && e.role === "alice"), 15_000, `the kill in the log\n${r.stderr}\n${JSON.stringify(logJson())}\n${server.stderr()}`).catch((e: Error) => {
    throw new Error(`${e.message}\n${r.stderr}\n${JSON.stringify(logJson())}\n${server.stderr()}`);
  });
  const kill = logJson().find((e) => e.syscall === "kexec_load" && e.role === "alice")!;
  assert.equal(kill.action, "kill");
  assert.equal(kill.context, "session");
  assert.match(kill.program ?? "", /perl/);
  assert.ok(kill.decidedBy && kill.decidedBy !== kill.pid, "the session whose program it is");
  // And in SQL, once seccomp.violations is installed from this server's record.
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const inst = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8" });
  assert.equal(inst.status, 0, inst.stderr);
  assert.match(query(cluster, "select program from seccomp.violations where syscall = 'kexec_load' and role = 'alice' and action = 'kill' limit 1"), /perl/);
  const line = /pg_seccomp: killed by the policy: kexec_load \(kill SIGSYS\) in pid \d+ \(session, role alice, database postgres\).*\(program \S*perl\S*\)/;
  await waitFor(() => line.test(server.stderr()), 5000, `the server's log to name the program\n${server.stderr()}`);
});

test("a call the policy kills in the kernel (plperlu mount) is in pg_seccomp log with its context and role, and in the server's log", { skip }, async () => {
  // First a call the supervisor decides (a program's exec: it classifies this backend), then the kill.
  query(cluster, "create extension if not exists plperlu; create or replace function do_mount() returns int language plperlu as $$ system('/bin/true'); syscall(246, 0, 0, 0, 0, 0); return 1; $$");
  const r = psql(cluster, "select do_mount()");
  assert.equal(r.ok, false, "the backend is killed");
  const mine = (e: ViolationEvent) => e.syscall === "kexec_load" && e.action === "kill" && e.role === "postgres";
  await waitFor(() => logJson().some(mine), 15_000, `the kill in the log\n${server.stderr()}`);
  const kill = logJson().find(mine)!;
  assert.equal(kill.context, "session");
  assert.equal(kill.role, "postgres");
  assert.equal(kill.database, "postgres");
  assert.equal(kill.signal, "SIGSYS");
  const line = /pg_seccomp: killed by the policy: kexec_load \(kill SIGSYS\) in pid \d+ \(session, role postgres, database postgres\)/;
  await waitFor(() => line.test(server.stderr()), 5000, `the server's log to name the kill\n${server.stderr()}`);
  // And the call the supervisor denied in the program the session ran, once.
  assert.match(server.stderr(), /pg_seccomp: denied by the policy: execve \(error EPERM\) in pid \d+ \(session, role postgres, database postgres\)/);
  // The server restarted its sessions (a crash restart) and serves again.
  await waitFor(() => psql(cluster, "select 1").ok, 30_000, "the server to serve again");
});

test("a backend killed soon after it started is logged: classified, or as a child of the postmaster not classified yet", { skip }, async () => {
  query(cluster, "create extension if not exists plperlu; create or replace function only_mount() returns int language plperlu as $$ syscall(246, 0, 0, 0, 0, 0); return 1; $$");
  const r = psql(cluster, "do $$ begin raise notice 'backend=%', pg_backend_pid(); end $$; select pg_sleep(0.5); select only_mount();");
  assert.equal(r.ok, false, "the backend is killed");
  const backend = Number(/backend=(\d+)/.exec(r.stderr)?.[1]);
  assert.ok(backend > 0, r.stderr);
  const mine = (e: ViolationEvent) => e.pid === backend && e.syscall === "kexec_load" && e.action === "kill";
  await waitFor(() => logJson().some(mine), 15_000, `the kill in the log\n${JSON.stringify(logJson())}\n${server.stderr()}`);
  const kill = logJson().find(mine)!;
  if (kill.context === "unclassified") assert.match(kill.note ?? "", /had not classified/);
  else assert.equal(kill.context, "session");
  await waitFor(() => psql(cluster, "select 1").ok, 30_000, "the server to serve again");
});

test("a record the server's OS user forges (its own process under a logging filter) is not attributed to the server, only counted", { skip: skip || (existsSync("/usr/bin/python3") ? false : "no /usr/bin/python3 (the forger is a python3 script)") }, async () => {
  // Strict mode: the kernel kills and records the first call outside read/write/exit, exactly
  // as a logging filter's record would read (uid = the server's user, exe of its choosing).
  const forger = join(scratch, "forge.py");
  writeFileSync(forger, [
    "import ctypes, os",
    "libc = ctypes.CDLL(None, use_errno=True)",
    "for i in range(5):",
    "    pid = os.fork()",
    "    if pid == 0:",
    "        libc.prctl(22, 1, 0, 0, 0)",
    "        libc.syscall(175)",
    "        os._exit(0)",
    "    print(pid, flush=True)",
    "    os.waitpid(pid, 0)",
  ].join("\n") + "\n", { mode: 0o644 });
  const r = spawnSync("/usr/bin/python3", [forger], { uid: cluster.user.uid, gid: cluster.user.gid, encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const pids = r.stdout.trim().split("\n").map(Number);
  assert.equal(pids.length, 5);
  await new Promise((res) => setTimeout(res, 1500));
  const events = logJson();
  assert.deepEqual(events.filter((e) => pids.includes(e.pid)), [], "no record of the forger's processes");
  assert.equal(events.filter((e) => e.syscall === "init_module").length, 0);
  // When supervision ends, the log gets the count of what was dropped.
  await stop(server);
  const summary = logJson().filter((e) => e.context === "unattributed");
  assert.ok(summary.length >= 1 && summary.some((e) => (e.count ?? 0) >= 5), JSON.stringify(summary));
  await waitFor(() => /kernel seccomp record\(s\) of processes of the server's user the supervisor did not know .* dropped/.test(server.stderr()), 5000, "the count in the launcher's output");
});
