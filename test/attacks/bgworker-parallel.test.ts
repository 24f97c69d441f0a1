// Attack: code loaded into a backend (a superuser's C function) registers a background worker
// that runs the server's own ParallelWorkerMain on a parallel context of its session, as
// LaunchParallelWorkers does, but with bgw_type "logical replication launcher". The worker's
// library is "postgres" (no mapping), so it runs only the server's code until it has connected
// (InitPostgres gives it its row) and is answered provisionally until then; its row's type is its
// bgw_type, the registrant's word, which the classifier believes for any background worker (its
// own MyBackendType is "background worker" for all of them, so it agrees). Then it loads the
// session's libraries (RestoreLibraryState): the mapping of the attacker's module is the exec
// gate's call, which pins it by that row as the logical replication launcher, which runs no SQL
// and does not take the session's lists: the module's _PG_init runs a shell, under a policy that
// denies exec to sessions (and so to background workers). The control is the same worker with
// bgw_type "parallel worker": the session's lists, no exec. (The parallel context's entry point is
// the server's ParallelQueryMain: the worker looks it up before it connects, and a library's
// entry point would be mapped then, before its row, and pin it background_worker.)
// Open on main (this test fails there): a background worker's row type is its bgw_type, which
// its registrant writes; its own MyBackendType is "background worker" for every one of them.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, reportLines, startReady, stop, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const SERVER_HEADERS = "/usr/include/postgresql/15/server";
const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : !existsSync(join(SERVER_HEADERS, "access/parallel.h")) ? "no PostgreSQL 15 server headers" : false);
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let dir: string;
let out: string;
const libs: Record<"control" | "launcher", string> = { control: "", launcher: "" };
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-bgworkerparallel-"));
  chmodSync(dir, 0o755);
  out = join(dir, "exec.txt");
  spawnSync("install", ["-m", "0666", "/dev/null", out]);
  for (const [kind, type] of [["control", "parallel worker"], ["launcher", "logical replication launcher"]] as const) {
    const lib = join(dir, `bgworker-parallel-${kind}.so`);
    const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-I${SERVER_HEADERS}`, `-DWORKER_TYPE="${type}"`, `-DOUT="${out}"`, `-DLIB="${lib}"`, "-o", lib, repoPath("test/fixtures/attack/bgworker-parallel.c")], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    libs[kind] = lib;
  }
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("code in a backend starts a parallel worker whose bgw_type is \"logical replication launcher\": it must not exec", {
  skip,
  // Open (found by the attack6 helper; docs/design.md, "Classification"): a background worker's
  // row type is its registrant's bgw_type, and a worker running the server's own code gets its
  // row before it maps anything. The fix reads the worker's own MyBgworkerEntry (library and
  // function, the postmaster's copy) and believes a row's worker type only when they match.
  todo: "a background worker's row type is its registrant's bgw_type (open: docs/design.md)",
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, "create role etl superuser login");
    const control = psql(cluster, `create function launch_control() returns int language c as '${libs.control}', 'launch_worker'; select launch_control();`, { role: "etl" });
    assert.ok(control.ok, control.stderr);
    const [controlRun] = await reportLines(out, 1);
    assert.match(controlRun ?? "", /^exec [1-9]/, `the parallel worker exec'd:\n${s.stderr().slice(-3000)}`);
    const attack = psql(cluster, `create function launch_launcher() returns int language c as '${libs.launcher}', 'launch_worker'; select launch_launcher();`, { role: "etl" });
    assert.ok(attack.ok, attack.stderr);
    const [, attackRun] = await reportLines(out, 2);
    assert.match(attackRun ?? "", /^exec /);
    assert.notEqual(attackRun, "exec 0", `a parallel worker whose bgw_type is "logical replication launcher" exec'd:\n${s.stderr().slice(-3000)}`);
  } finally {
    await stop(s);
  }
});
