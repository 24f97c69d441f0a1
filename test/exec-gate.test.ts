// The exec gate and the server's own code (docs/design.md, "The exec gate and the server's own
// modules"; src/host/server-code.ts), on a real server under per-role rules: a connection that
// only runs PL/pgSQL maps plpgsql.so without being classified (no monitor query, no injection),
// and stays subject to its role's rules, which decide its first call they differ on (execve, at
// that call); a LOADed module that is not the server's own classifies the process before it runs.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import type { ViolationEvent } from "../src/host/violation-event.js";
import { integrationSkip, logFile, newCluster, startReady, stop, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();
const profile = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

interface Stats {
  serverCodeMappings: number;
  classifications: number;
  injections: number;
}

test("PL/pgSQL loads without classifying its backend; the role's rules still decide its exec; another module classifies first", { skip, timeout: 180_000 }, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`);
  const log = logFile("exec-gate.jsonl");
  const before = process.env.PG_SECCOMP_STATS;
  process.env.PG_SECCOMP_STATS = "1";
  let s;
  try {
    s = await startReady(cluster, ["--policy", policy, "--log", log]);
  } finally {
    if (before === undefined) delete process.env.PG_SECCOMP_STATS;
    else process.env.PG_SECCOMP_STATS = before;
  }
  const stats = (): Stats => {
    const line = s!.stderr().split("\n").find((l) => l.startsWith('{"pg_seccomp_stats"'));
    assert.ok(line, `the launcher's stats line:\n${s!.stderr().slice(-2000)}`);
    return (JSON.parse(line) as { pg_seccomp_stats: Stats }).pg_seccomp_stats;
  };
  try {
    query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program");
    // Three connections that call PL/pgSQL and nothing their contexts decide differently.
    for (let i = 0; i < 3; i++) assert.match(query(cluster, "do $$ begin perform 1; end $$; select 'plpgsql ran'", { role: "bob" }), /plpgsql ran$/);
    // PL/pgSQL first, then an exec: each role's rule decides it.
    const bob = psql(cluster, "do $$ begin perform 1; end $$; copy (select 1) to program 'cat > /dev/null'", { role: "bob" });
    assert.equal(bob.ok, false, "bob's session may not exec");
    const alice = psql(cluster, "do $$ begin perform 1; end $$; copy (select 1) to program 'cat > /dev/null'", { role: "alice" });
    assert.ok(alice.ok, alice.stderr);
    // A module that is not the server's own: its mapping waits for the classification.
    const load = psql(cluster, "load 'auto_explain'; select 'loaded'");
    assert.ok(load.ok, load.stderr);
  } finally {
    await stop(s);
  }
  const st = stats();
  // 3 + bob + alice mapped plpgsql.so's text (one mmap each, or more: one per executable segment).
  assert.ok(st.serverCodeMappings >= 5, `plpgsql.so mapped without classification: ${JSON.stringify(st)}`);
  // bob's and alice's execs and the LOAD: three classifications (the do-only connections none).
  assert.equal(st.classifications, 3, JSON.stringify(st));
  const events = readFileSync(log, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent);
  const denied = events.filter((e) => e.syscall === "execve" && e.action === "error");
  assert.ok(denied.length >= 1 && denied.every((e) => e.role === "bob" && e.context === "session"), JSON.stringify(events, null, 1));
});
