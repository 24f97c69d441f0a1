// Issue 9's failing scenario, end to end, on a cluster whose pg_hba.conf allows only peer
// authentication: `pg_seccomp learn` with its defaults (hot-path calls in the kernel, the rest
// learned per context, shortened timers waited out, a crash round) on a short pgbench-plus-SQL
// workload run as the server's OS user; then `learn --verify` runs the server under the result
// with every denying default turned to kill, past its timers and through an immediate stop,
// crash recovery and an in-place crash restart, and requires that nothing was denied. A policy
// missing a call the server needs fails verify with that call named; a failing workload makes
// learn fail without writing; -o may not be the --merge input without --force.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { destroyCluster, postgresArgs, type Cluster } from "../src/postgres/cluster.js";
import { loadPolicyFile } from "../src/policy/policy.js";
import { contextDecisions, decisionFor } from "../src/policy/decision.js";
import { syscallNumber } from "../src/syscalls/index.js";
import { BIN, integrationSkip, newCluster, writePolicy } from "./support/server.js";

const skip = integrationSkip();
const WORKLOAD = "pgbench -i -q -s 1 && pgbench -c 2 -T 3 >/dev/null && psql -X -qAtc 'select count(*) from pg_class'";

let cluster: Cluster;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  // Peer authentication only: a workload run as root with PGUSER=postgres could not connect.
  const hba = join(cluster.dataDir, "pg_hba.conf");
  writeFileSync(hba, "local all all peer\n");
  appendFileSync(hba, "");
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

function cli(args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args, "--", ...postgresArgs(cluster)], { encoding: "utf8", timeout: 240_000 });
}

function allowed(policyPath: string, ctx: Parameters<typeof contextDecisions>[2], name: string): boolean {
  const d = decisionFor(contextDecisions(loadPolicyFile(policyPath), "x86_64", ctx), syscallNumber("x86_64", name)!);
  return d.kind === "leaf" && d.action.kind === "allow";
}

test("learn (defaults, peer auth) -> verify with default kill: past the timers and through crash recovery, nothing denied; a policy missing a call fails verify naming it", { skip, timeout: 300_000 }, () => {
  const out = writePolicy("", "learned-safe.conf");
  const r = cli(["learn", "-o", out, "--timer-wait", "45", "--workload", WORKLOAD]);
  assert.equal(r.status, 0, r.stderr.slice(-4000));
  assert.match(r.stdout, /^\d+ new syscalls? this round$/m);
  assert.match(r.stderr, /complete: every timer path and crash recovery ran/);
  assert.match(r.stderr, /timer checkpoint_timeout: fired/);
  assert.match(r.stderr, /crash: immediate stop yes, restart and recovery yes, backend killed and in-place crash restart yes/);
  assert.match(r.stderr, /running the workload as postgres/);
  const text = readFileSync(out, "utf8");
  // The floor and its kill list are kept; per-context overlays were learned.
  assert.match(text, /^global_syscall_kill = '@obsolete/m);
  assert.match(text, /^# also allowed here: the floor/m);
  for (const ctx of [{ context: "background_writer" }, { context: "startup" }, { context: "checkpointer" }, { context: "session" }] as const) {
    for (const name of ["brk", "sync_file_range", "gettid", "tgkill", "madvise"]) assert.ok(allowed(out, ctx, name), `${name} in ${ctx.context}`);
  }
  assert.match(text, /^session_syscall_allow = /m);
  assert.ok(allowed(out, { context: "postmaster" }, "listen"), "the postmaster listens");
  assert.ok(!allowed(out, { context: "session", role: "postgres", database: "postgres" }, "listen"), "sessions do not listen");

  const v = cli(["learn", "--verify", out, "--timer-wait", "45", "--workload", WORKLOAD]);
  assert.equal(v.status, 0, `${v.stdout}\n${v.stderr.slice(-4000)}`);
  assert.match(v.stdout, /^verify: passed/m);

  // The same policy without a call the postmaster needs at start: verify fails and names it.
  const broken = writePolicy(text.replace(/\bgeteuid, |, geteuid\b/g, ""), "learned-broken.conf");
  assert.doesNotMatch(readFileSync(broken, "utf8"), /\bgeteuid\b.*'/);
  const f = cli(["learn", "--verify", broken, "--timer-wait", "45", "--workload", WORKLOAD]);
  assert.equal(f.status, 1, f.stderr.slice(-3000));
  assert.match(f.stdout, /^verify: FAILED/m);
  assert.match(f.stdout, /geteuid/);
});

test("a failing workload makes learn fail and leaves the output as it was", { skip }, () => {
  const out = writePolicy("# an earlier round\n", "learned-kept.conf");
  const r = cli(["learn", "-o", out, "--workload", "psql -X -c 'select 1' && exit 3"]);
  assert.equal(r.status, 1, r.stderr.slice(-3000));
  assert.match(r.stderr, /learning failed: the workload failed \(exit code 3\)/);
  assert.equal(readFileSync(out, "utf8"), "# an earlier round\n");
});

test("-o may not be the --merge input without --force", { skip }, () => {
  const out = writePolicy("", "learned-merge.conf");
  const r = cli(["learn", "-o", out, "--merge", out, "--workload", "true"]);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /is the --merge input/);
  assert.ok(existsSync(out));
});
