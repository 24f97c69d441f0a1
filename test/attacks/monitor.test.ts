// Attack library: the launcher's monitor (src/supervisor/monitor.ts). A PostgreSQL superuser with
// SQL only, and the server's OS user, try to blind it, to make it talk to something else, or to
// make it adopt a backend of their choosing as its own; a DBA copies and drops the database it
// uses. Every test runs a real server under `run` with a policy where the monitor's answer
// decides: sessions may not exec, role alice may, database payments may not.
//
// Checked once against the psql-based monitor (commit 04b1954): every test here failed on it
// except the pg_backend_pid one, which passed there too (the victim's exec is made by popen's
// child, decided through its parent's classification; the adoption the issue reports was not
// reproduced this way). It stays as a guard: the monitor never asks the server who it is.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, symlinkSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, postgresArgs, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster, startReady, startRun, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { waitReady } from "../../src/postgres/cluster.js";
import { hostProfilePath } from "../support/paths.js";
import { majors } from "../support/majors.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");
const COPY = (tag: string) => `copy (select 1) to program 'cat > /dev/null' -- ${tag}`;
const POLICY = profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\ndatabase_syscall_error.payments = '*, execve'\n";

let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const s = await startReady(cluster, []);
  query(cluster, "create role alice superuser login");
  query(cluster, "create database payments");
  await stop(s);
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

/** Runs SQL as alice in database postgres: ok only if the monitor identified her. */
function aliceMayExec(c: Cluster, tag: string, db?: string): boolean {
  return psql(c, COPY(tag), { role: "alice", ...(db ? { db } : {}) }).ok;
}

/** Rewrites one line (1-based) of postmaster.pid, as the server's OS user can. */
function rewritePidLine(dataDir: string, line: number, value: string): void {
  const path = join(dataDir, "postmaster.pid");
  const lines = readFileSync(path, "utf8").split("\n");
  lines[line - 1] = value;
  writeFileSync(path, lines.join("\n"));
}

test("baseline: the monitor tells alice (may exec) from other roles and from database payments", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(POLICY)]);
  try {
    assert.ok(aliceMayExec(cluster, "baseline"), `alice may exec\n${s.stderr()}`);
    assert.equal(psql(cluster, COPY("postgres may not")).ok, false);
    assert.equal(aliceMayExec(cluster, "not in payments", "payments"), false);
  } finally {
    await stop(s);
  }
  assert.doesNotMatch(s.stderr(), /alarm/);
});

test("postmaster.pid's port rewritten and the monitoring session terminated: the monitor comes back, with an alarm", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(POLICY)]);
  try {
    assert.ok(aliceMayExec(cluster, "before"));
    // The server's OS user points the port line elsewhere (the postmaster only rechecks the pid line).
    rewritePidLine(cluster.dataDir, 4, "1");
    // A superuser terminates the monitoring session while it is connected (it was opened to
    // classify this very session).
    const killed = query(cluster, "select count(pg_catalog.pg_terminate_backend(pid)) from pg_catalog.pg_stat_activity where application_name = 'pg_seccomp monitor'");
    assert.equal(killed, "1", "the monitoring session was connected and was terminated");
    await waitFor(() => /alarm: monitor: the monitoring session ended/.test(s.stderr()), 10_000, "the alarm for the lost session");
    assert.ok(aliceMayExec(cluster, "after"), `the monitor came back: alice may exec again\n${s.stderr()}`);
    assert.equal(psql(cluster, COPY("postgres still may not")).ok, false);
  } finally {
    await stop(s);
  }
});

test("pg_stat_get_activity's pg_proc row changed (UPDATE ... WHERE oid = 2022): an alarm, and no session gets more than its rules", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(POLICY)]);
  try {
    assert.ok(aliceMayExec(cluster, "before"));
    // pg_stat_activity keeps working (it calls the function by OID); a call by name does not.
    query(cluster, "update pg_catalog.pg_proc set proname = 'pg_stat_get_activity_moved' where oid = 2022");
    assert.ok(Number(query(cluster, "select count(*) from pg_catalog.pg_stat_activity")) > 0, "pg_stat_activity still works");
    await new Promise((r) => setTimeout(r, 1500)); // the monitor's connection idles out: the next one plans afresh
    assert.equal(aliceMayExec(cluster, "blinded"), false, "without a trustworthy answer alice gets no allowance");
    assert.equal(psql(cluster, COPY("postgres blinded")).ok, false);
    await waitFor(() => /alarm: monitor: .*(catalog was changed|query failed)/.test(s.stderr()), 10_000, "the alarm for the changed catalog");
    // And a SQL function put in the built-in's place is noticed too.
    query(cluster, "update pg_catalog.pg_proc set proname = 'pg_stat_get_activity' where oid = 2022");
    query(cluster, "update pg_catalog.pg_proc set prosrc = 'pg_stat_get_activity_x' where oid = 2022");
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(aliceMayExec(cluster, "prosrc changed"), false);
    await waitFor(() => /alarm: monitor: the catalog was changed: p\.prosrc/.test(s.stderr()), 10_000, "the alarm for prosrc");
  } finally {
    query(cluster, "update pg_catalog.pg_proc set proname = 'pg_stat_get_activity', prosrc = 'pg_stat_get_activity' where oid = 2022");
    await stop(s);
  }
});

test("pg_backend_pid rewritten to name a victim backend: the monitor does not adopt it; payments may still not exec", { skip }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(POLICY)]);
  const env = { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "payments" };
  let victim: ReturnType<typeof spawn> | undefined;
  try {
    // The victim: a session in payments that will exec after a pause.
    let out = "";
    victim = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", "select pg_sleep(4) -- victim", "-c", COPY("victim")], { env, stdio: ["ignore", "pipe", "pipe"] });
    victim.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    const exit = new Promise<number | null>((res) => victim!.on("exit", (c) => res(c)));
    let pid = "";
    await waitFor(() => (pid = query(cluster, "select pid from pg_catalog.pg_stat_activity where query like '%-- victim' and datname = 'payments'")) !== "", 10_000, "the victim");
    // pg_backend_pid() now answers the victim's pid, as an inlinable SQL function.
    query(cluster, `update pg_catalog.pg_proc set prolang = 14, prosrc = 'select ${Number(pid)}' where oid = 2026`);
    query(cluster, "select pg_catalog.pg_terminate_backend(pid) from pg_catalog.pg_stat_activity where application_name = 'pg_seccomp monitor'");
    // A question (alice's allowed exec is classified): the monitor reconnects, and the psql-based
    // one asked pg_backend_pid() who it was.
    assert.ok(aliceMayExec(cluster, "reconnect"), s.stderr());
    const code = await exit;
    assert.notEqual(code, 0, `the victim in payments ran a program: ${out}\n${s.stderr()}`);
  } finally {
    victim?.kill("SIGKILL");
    query(cluster, "update pg_catalog.pg_proc set prolang = 12, prosrc = 'pg_backend_pid' where oid = 2026");
    await stop(s);
  }
});

test("CREATE DATABASE ... TEMPLATE postgres and DROP DATABASE postgres work while the monitor is up; it moves to template1", { skip }, async () => {
  const c = await newCluster();
  const s0 = await startReady(c, []);
  query(c, "create role alice superuser login");
  await stop(s0);
  const s = await startReady(c, ["--policy", writePolicy(POLICY)]);
  try {
    assert.ok(aliceMayExec(c, "monitor up"));
    // Right after a question (the monitor is connected to postgres), from another database.
    const copy = psql(c, "create database x template postgres", { db: "template1" });
    assert.ok(copy.ok, copy.stderr);
    assert.ok(aliceMayExec(c, "after create", "x"));
    const drop = psql(c, "drop database postgres", { db: "x" });
    assert.ok(drop.ok, drop.stderr);
    // The monitor logs into template1 now; plain CREATE DATABASE (which copies template1) still works.
    assert.ok(aliceMayExec(c, "after drop", "x"), s.stderr());
    const plain = psql(c, "create database y", { db: "x" });
    assert.ok(plain.ok, plain.stderr);
    assert.equal(psql(c, COPY("postgres may not"), { db: "x" }).ok, false);
  } finally {
    await stop(s);
    destroyCluster(c);
  }
});

// An embedded major, started through a directory that holds postgres but no psql (as a fresh
// install of the embedded builds has): the monitor needs none.
const embedded = majors().find((m) => m.major === 16 && m.binDir);
test("no psql beside postgres (embedded 16): the monitor still answers", { skip: skip || (embedded ? false : "PostgreSQL 16 not available") }, async () => {
  const c = await createCluster({ binDir: embedded!.binDir! });
  const bare = mkdtempSync(join(tmpdir(), "pg_seccomp-nopsql-"));
  chmodSync(bare, 0o755);
  symlinkSync(join(embedded!.binDir!, "postgres"), join(bare, "postgres"));
  let s: RunningServer | undefined;
  try {
    const s0 = await startReady(c, []);
    query(c, "create role alice superuser login");
    await stop(s0);
    const [, ...args] = postgresArgs(c);
    const proc = spawn(process.execPath, [BIN, "run", "--policy", writePolicy(POLICY), "--", join(bare, "postgres"), ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    let done = false;
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => proc.on("exit", (code, signal) => ((done = true), res({ code, signal }))));
    s = { proc, cluster: c, stderr: () => err, exited, alive: () => !done };
    await waitReady(c, s.alive, 60_000);
    assert.ok(aliceMayExec(c, "no psql"), `alice may exec: the monitor answered\n${err}`);
    assert.equal(psql(c, COPY("postgres may not")).ok, false);
  } finally {
    if (s) await stop(s);
    destroyCluster(c);
    spawnSync("rm", ["-rf", bare]);
  }
});

test("run --user postgres from root: the server's environment is postgres's (HOME, USER, LOGNAME, SHELL, PATH)", { skip }, async () => {
  const s = startRun(cluster, ["--user", "postgres", "--policy", writePolicy(profile)]);
  try {
    await waitReady(cluster, s.alive, 60_000);
    const pm = postmasterPid(cluster.dataDir)!;
    const env = new Map(readFileSync(`/proc/${pm}/environ`, "utf8").split("\0").filter(Boolean).map((kv) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]));
    const pw = spawnSync("getent", ["passwd", "postgres"], { encoding: "utf8" }).stdout.trim().split(":");
    assert.equal(env.get("HOME"), pw[5]);
    assert.equal(env.get("USER"), "postgres");
    assert.equal(env.get("LOGNAME"), "postgres");
    assert.equal(env.get("SHELL"), pw[6] || "/bin/sh");
    assert.equal(env.get("PATH"), "/usr/local/bin:/usr/bin:/bin");
    assert.equal(env.has("SUDO_USER"), false);
    assert.equal(env.has("XDG_RUNTIME_DIR"), false, "root's runtime directory is not the server's");
  } finally {
    await stop(s);
  }
});
