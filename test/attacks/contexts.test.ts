// Attack library: a PostgreSQL superuser with SQL only tries to leave the session context (where
// `execve` is denied) for one where it is allowed, by choosing role and database names that
// once fooled a title parser, by asking through dblink, and by shaping what the statement lookup
// reads. Every attempt must fail on a real server, be logged as a session's denied call, and
// leave the server serving. Also: a stopped launcher fails closed; a flood of denied calls stays
// bounded.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { destroyCluster, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, startRun, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";
import type { ViolationEvent } from "../../src/host/violation-event.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");
const COPY = (tag: string) => `copy (select 1) to program 'cat > /dev/null' -- ${tag}`;

// Names that a title parser once took for something else: backend types, title syntax, a role
// name that starts with another role's name, a database name with spaces.
const HOSTILE_ROLES = [
  "walsender", "archiver", "checkpointer", "x: archiver", "alice postgres [local] idle", "alice", "postgres: logger ",
];
const HOSTILE_DB = "my db [local] archiver";

let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const s = await startReady(cluster, []);
  for (const r of HOSTILE_ROLES) query(cluster, `create role "${r.replace(/"/g, '""')}" superuser login`);
  query(cluster, `create database "${HOSTILE_DB}"`);
  query(cluster, "create extension dblink");
  await stop(s);
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

function events(path: string): ViolationEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent);
}

test("hostile role and database names, and dblink, cannot leave the session context", { skip }, async () => {
  // Only alice (the real one) may exec; every backend type may (the profile allows it globally).
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n");
  const log = logFile("attack-names.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    assert.ok(psql(cluster, COPY("alice may"), { role: "alice" }).ok, "the real alice may exec");
    for (const role of HOSTILE_ROLES.filter((r) => r !== "alice")) {
      const r = psql(cluster, COPY(`as ${role}`), { role });
      assert.equal(r.ok, false, `role "${role}" ran a program`);
      // A denied exec of popen's shell: the supervisor kills that child (test/spawn-denied.test.ts).
      assert.match(r.stderr, /terminated by signal 31: Bad system call/);
    }
    const db = psql(cluster, COPY("in the hostile database"), { db: HOSTILE_DB });
    assert.equal(db.ok, false, "a database name with spaces ran a program");
    // From a denied session, through dblink, to sessions with hostile names.
    for (const role of ["walsender", "x: archiver"]) {
      const conn = `host=${cluster.socketDir} port=${cluster.port} dbname=postgres user=''${role}''`.replace(/''/g, "'");
      const r = psql(cluster, `select dblink_exec('${conn.replace(/'/g, "''")}', '${COPY(`dblink ${role}`).replace(/'/g, "''")}')`);
      assert.equal(r.ok, false, `dblink as ${role} ran a program`);
    }
    assert.equal(query(cluster, "select 1"), "1", "the server keeps serving");
  } finally {
    await stop(s);
  }
  const execs = events(log).filter((e) => e.syscall === "execve" && e.action === "error");
  for (const role of HOSTILE_ROLES.filter((r) => r !== "alice")) {
    assert.ok(execs.some((e) => e.context === "session" && e.role === role), `the denied exec of "${role}" is logged as a session's: ${JSON.stringify(execs.map((e) => [e.context, e.role]))}`);
  }
  assert.ok(execs.some((e) => e.context === "session" && e.database === HOSTILE_DB), "the hostile database's denied exec is logged");
  assert.ok(!execs.some((e) => e.role === "alice" && e.database === "postgres" && /alice may/.test(e.query ?? "")), "alice was allowed");
});

test("the statement lookup is schema-qualified: search_path and a look-alike view cannot forge the logged statement", { skip }, async () => {
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\n");
  const log = logFile("attack-statement.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    query(cluster, "create schema if not exists evil; create or replace view evil.pg_stat_activity as select pid, 'FORGED'::text as query, backend_type, usesysid, datid from pg_catalog.pg_stat_activity");
    query(cluster, "alter role postgres set search_path = evil, pg_catalog; alter database postgres set search_path = evil, pg_catalog");
    // The monitoring session opens after these settings exist.
    const r = psql(cluster, COPY("the real statement") + ";");
    assert.equal(r.ok, false);
    await waitFor(() => events(log).some((e) => e.syscall === "execve"), 10_000, "the denied exec in the log");
  } finally {
    query(cluster, "alter role postgres reset search_path; alter database postgres reset search_path; drop schema evil cascade");
    await stop(s);
  }
  const e = events(log).find((x) => x.syscall === "execve")!;
  assert.equal(e.context, "session");
  assert.equal(e.role, "postgres");
  assert.match(e.query ?? "", /the real statement/, JSON.stringify(e));
});

test("a flood of denied calls stays bounded: the log is rate-limited and other sessions are served", { skip }, async () => {
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n");
  const log = logFile("attack-flood.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    const flood = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-c",
      "do $$ begin for i in 1..3000 loop begin copy (select 1) to program 'true'; exception when others then null; end; end loop; end $$"], {
      env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" },
      stdio: "ignore",
    });
    const done = new Promise<number | null>((r) => flood.on("exit", (c) => r(c)));
    // While it floods, other sessions connect and are classified: alice still may exec.
    for (let i = 0; i < 5; i++) {
      const r = psql(cluster, COPY(`alice ${i}`), { role: "alice" });
      assert.ok(r.ok, `alice is served during the flood: ${r.stderr}\n${s.stderr().slice(-3000)}`);
    }
    assert.equal(await done, 0);
    assert.ok(s.alive());
  } finally {
    await stop(s);
  }
  const denied = events(log).filter((e) => e.syscall === "execve" && e.action === "error");
  assert.ok(denied.length > 0 && denied.length < 3000, `events are rate-limited: ${denied.length} of 3000 logged`);
  // By the session: every denied exec is a new child's (popen forks each time), and the bucket
  // is the backend's, so no second has more than its 20 (and the first event of the kind).
  // Summary records (a count of what the bucket held back) come on top, once a second at most.
  const single = denied.filter((e) => (e as { count?: number }).count === undefined);
  const summaries = denied.filter((e) => (e as { count?: number }).count !== undefined);
  assert.ok(summaries.length > 0, "what the bucket held back is in the log as summary records");
  const perSecond = new Map<string, number>();
  for (const e of single) perSecond.set(e.time.slice(0, 19), (perSecond.get(e.time.slice(0, 19)) ?? 0) + 1);
  assert.ok(Math.max(...perSecond.values()) <= 21, `at most 20 a second from the flooding session: ${[...perSecond.values()].join(" ")}`);
  assert.match(s.stderr(), /violation-log rate limit reached/);
});

test("a stopped launcher fails closed: the watchdog kills the server within seconds; committed rows survive", { skip }, async () => {
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\n");
  const s = startRun(cluster, ["--policy", policy]);
  const { waitReady } = await import("../../src/postgres/cluster.js");
  await waitReady(cluster, s.alive, 60_000);
  query(cluster, "drop table if exists kept; create table kept as select g from generate_series(1, 1000) g");
  const pm = postmasterPid(cluster.dataDir)!;
  process.kill(s.proc.pid!, "SIGSTOP");
  const stoppedAt = Date.now();
  // A call that needs the supervisor now waits for a launcher that cannot answer.
  const hung = spawn(join(cluster.binDir, "psql"), ["-X", "-c", COPY("while the launcher is stopped")], {
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres" },
    stdio: "ignore",
  });
  const hungDone = new Promise<void>((r) => hung.on("exit", () => r()));
  try {
    await waitFor(() => !existsSync(`/proc/${pm}`) || /^\S+ \S+ [ZX]/.test(readFileSync(`/proc/${pm}/stat`, "utf8").replace(/^.*\) /, "x x ")), 20_000, "the postmaster to be killed");
    const failClosedMs = Date.now() - stoppedAt;
    await hungDone;
    process.stdout.write(`# fail-closed after ${failClosedMs} ms with the launcher stopped\n`);
  } finally {
    process.kill(s.proc.pid!, "SIGCONT");
    await s.exited;
  }
  assert.match(s.stderr(), /watchdog: the launcher \(pid \d+\) has been stopped/);
  // Recovery keeps every committed row.
  const again = await startReady(cluster, ["--policy", policy]);
  try {
    assert.equal(query(cluster, "select count(*) from kept"), "1000");
  } finally {
    await stop(again);
  }
  assert.equal(spawnSync("true").status, 0);
});

test("code loaded into a backend cannot leave its context: CLONE_PARENT, clone3, exec, exec after retitling", { skip }, async () => {
  const { mkdtempSync, chmodSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-attack-"));
  chmodSync(dir, 0o755);
  const out = join(dir, "results.txt");
  const lib = join(dir, "backend-code.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-DOUT="${out}"`, "-o", lib, repoPath("test/fixtures/attack/backend-code.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  // The results file is written by the backend (the postgres user).
  spawnSync("install", ["-m", "0666", "/dev/null", out]);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\n");
  const log = logFile("attack-code.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    const r = psql(cluster, `load '${lib}'`);
    assert.equal(r.ok, false, "LOAD fails (no magic block) after the constructor ran");
    assert.match(r.stderr, /magic block/, `${r.stderr}\n${s.stderr()}`);
    const results = Object.fromEntries(readFileSync(out, "utf8").trim().split("\n").map((l) => l.split(" ") as [string, string]));
    assert.deepEqual(results, { clone_parent: "EPERM", clone3: "ENOSYS", exec: "EPERM", retitle_exec: "EPERM" });
    assert.equal(query(cluster, "select 1"), "1", "the server keeps serving");
  } finally {
    await stop(s);
    rmSync(dir, { recursive: true, force: true });
  }
  const execs = events(log).filter((e) => e.syscall === "execve" && e.action === "error");
  assert.equal(execs.length, 2);
  assert.ok(execs.every((e) => e.context === "session" && e.role === "postgres" && e.decidedBy !== undefined), JSON.stringify(execs));
  assert.ok(execs.some((e) => /archiver/.test(e.process)), "the retitled process's exec was still a session's");
});

test("the README's example policy under peer authentication: denied calls during authentication do not pile up backends", { skip }, async () => {
  const { writeFileSync } = await import("node:fs");
  const hba = join(cluster.dataDir, "pg_hba.conf");
  const saved = readFileSync(hba, "utf8");
  writeFileSync(hba, "local all all peer\n");
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve, socket(arg0 == 16)'\n");
  const s = await startReady(cluster, ["--policy", policy, "--log", logFile("attack-peer.jsonl")]);
  const asPostgres = (sql: string) =>
    spawnSync(join(cluster.binDir, "psql"), ["-X", "-A", "-t", "-c", sql], {
      env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" },
      uid: cluster.user.uid, gid: cluster.user.gid, encoding: "utf8", timeout: 30_000,
    });
  try {
    for (let i = 0; i < 30; i++) {
      const r = asPostgres("select 1");
      assert.equal(r.status, 0, r.stderr);
    }
    const others = asPostgres("select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name <> 'pg_seccomp monitor'");
    assert.equal(others.stdout.trim(), "0", "no backend is left waiting");
    assert.equal(asPostgres(COPY("peer")).status === 0, false, "sessions still may not exec");
  } finally {
    await stop(s);
    writeFileSync(hba, saved);
  }
});

test("over TCP too: a session's client connection is recognised, so per-role rules apply and names still do not", { skip }, async () => {
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n");
  const s = startRun(cluster, ["--policy", policy], ["-c", "listen_addresses=127.0.0.1"]);
  const { waitReady } = await import("../../src/postgres/cluster.js");
  await waitReady(cluster, s.alive, 60_000);
  const overTcp = (role: string, sql: string) =>
    spawnSync(join(cluster.binDir, "psql"), ["-X", "-A", "-t", "-h", "127.0.0.1", "-p", String(cluster.port), "-U", role, "-d", "postgres", "-c", sql], { encoding: "utf8", timeout: 30_000 });
  try {
    const a = overTcp("alice", COPY("alice over tcp"));
    assert.equal(a.status, 0, a.stderr);
    const w = overTcp("walsender", COPY("walsender over tcp"));
    assert.notEqual(w.status, 0, "a role named walsender is a session over TCP too");
  } finally {
    await stop(s);
  }
});
