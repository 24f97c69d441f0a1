// Per-process contexts decided by the supervisor, with a real PostgreSQL server: the postmaster
// keeps listening while sessions may not fork or exec, per-role and per-database rules,
// a backend-type rule, and the violation log naming process, role and database.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { hostArch } from "../src/syscalls/index.js";
import type { ViolationEvent } from "../src/host/violation-event.js";

const skip = integrationSkip();
// The machine's own starter profile (aarch64's in the VM lab: injection runs there too).
const profile = readFileSync(repoPath(`profiles/postgresql-15-${hostArch()}.conf`), "utf8");

let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster(["archive_mode = on", "archive_command = 'true'", "wal_level = replica"]);
  const s = await startReady(cluster, []);
  query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program");
  query(cluster, "create database analytics");
  await stop(s);
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

const COPY_PROGRAM = "copy (select 1) to program 'cat > /dev/null'";

test("sessions may not fork or exec while the postmaster keeps accepting connections; per-role and per-database rules", { skip }, async () => {
  const policy = writePolicy(profile + `
session_syscall_error = '*, execve'
session_syscall_allow.alice = '*, execve'
database_syscall_error.analytics = '*, execve'
`);
  const s = await startReady(cluster, ["--policy", policy, "--log", logFile("contexts-violations.jsonl")]);
  try {
    const super_ = psql(cluster, COPY_PROGRAM);
    assert.equal(super_.ok, false, "the postgres role's session may not exec");
    const bob = psql(cluster, COPY_PROGRAM, { role: "bob" });
    assert.equal(bob.ok, false, "bob's session may not exec");
    // A session that stays connected a moment: the log can look its statement up.
    spawnSync(join(cluster.binDir, "psql"), ["-X", "-U", "bob", "-d", "postgres", "-c", COPY_PROGRAM + " -- bob's statement", "-c", "select pg_sleep(1.5)"], {
      env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) },
    });
    const alice = psql(cluster, COPY_PROGRAM, { role: "alice" });
    assert.ok(alice.ok, `alice may: ${alice.stderr}`);
    const aliceAnalytics = psql(cluster, COPY_PROGRAM, { role: "alice", db: "analytics" });
    assert.equal(aliceAnalytics.ok, false, "but not in the analytics database");
    // The postmaster still forks new backends and accepts connections.
    for (let i = 0; i < 5; i++) assert.equal(query(cluster, "select 1"), "1");
  } finally {
    await stop(s);
  }
  const events = readFileSync(logFile("contexts-violations.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l) as ViolationEvent);
  const execs = events.filter((e) => e.syscall === "execve");
  assert.ok(execs.some((e) => e.action === "error" && e.context === "session" && e.role === "bob" && e.database === "postgres"), JSON.stringify(execs));
  assert.ok(execs.some((e) => e.action === "error" && e.role === "alice" && e.database === "analytics"));
  assert.ok(!execs.some((e) => e.action === "error" && e.role === "alice" && e.database === "postgres"));
  assert.ok(execs.every((e) => /^postgres: \S+ \S+ \[local\]/.test(e.process)), "the process title is logged");
  assert.ok(execs.some((e) => e.role === "bob" && /bob's statement/.test(e.query ?? "")), "the running statement is logged");
});

test("a backend-type rule: the archiver may not exec its archive_command, sessions still may", { skip }, async () => {
  const policy = writePolicy(profile + "\narchiver_syscall_error = '*, execve'\n");
  const log = logFile("contexts-archiver.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", log]);
  try {
    assert.ok(psql(cluster, COPY_PROGRAM).ok, "sessions may exec");
    query(cluster, "create table if not exists t (a int); insert into t values (1); select pg_switch_wal()");
    await waitFor(() => existsSync(log) && /"context":"archiver"/.test(readFileSync(log, "utf8")), 30_000, "the archiver's denied exec");
    const events = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as ViolationEvent);
    const a = events.find((e) => e.context === "archiver")!;
    assert.equal(a.syscall, "execve");
    assert.equal(a.action, "error");
    assert.match(a.process, /^postgres: archiver/);
    assert.ok(!events.some((e) => e.context === "session" && e.action === "error"));
  } finally {
    await stop(s);
  }
});
