// Attack: code in one backend rewrites the shared-memory status row of a PARALLEL WORKER before
// the worker is classified, so that the worker runs in another role's context. The row cross-check
// of 4fe48d4 (docs/design.md, "Classification", fact 4) reads who a process logged in as from its
// own Port, but a parallel worker has no client connection and no Port, and its row (its leader's
// role and database) is trusted as it is. Attacker: code loaded into a backend (here a superuser's
// LOAD, as in row-forge.test.ts; its sessions are classified as etl, which may not exec). The
// leader LOADs a module with a magic block (worker-exec.c), which the server then loads into every
// parallel worker of that session (RestoreLibraryState); the worker's mapping of it is the exec
// gate's routed call, which classifies the worker from its row; a second backend of the attacker
// (worker-row-forge.c) rewrites every parallel worker row of etl to alice in a loop meanwhile.
// The module's constructor, in the worker, runs a shell: with alice's `session_syscall_allow`
// (parallel workers got their leader's role's lists, allowances too) it was allowed.
// Fixed: a parallel worker has no private record of its leader or role that another backend
// cannot write (its leader's pid, role and database come from the DSM segment and the postmaster's
// copy of a shared-memory slot the leader fills in), so its row's role is believed only to narrow:
// a parallel worker gets the session's own filter as well as its row's role's and database's
// overlays (src/policy/decision.ts), and a role's allowances beyond the session's never reach a
// parallel worker. A forged row then gains nothing beyond what any session may do.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawn, spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : false);
const profile = readFileSync(hostProfilePath(), "utf8");
const PARALLEL = "set force_parallel_mode = on; set parallel_setup_cost = 0; set parallel_tuple_cost = 0; select count(*) from pg_class";

let cluster: Cluster;
let dir: string;
let forgeLib: string;
let execLib: string;
let args: string;
let forgeOut: string;
let execOut: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-workerforge-"));
  chmodSync(dir, 0o755);
  args = join(dir, "args.txt");
  forgeOut = join(dir, "forge.txt");
  execOut = join(dir, "exec.txt");
  forgeLib = join(dir, "worker-row-forge.so");
  execLib = join(dir, "worker-exec.so");
  for (const [lib, src] of [[forgeLib, "worker-row-forge.c"], [execLib, "worker-exec.c"]] as const) {
    const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-DARGS="${args}"`, `-DOUT="${src === "worker-exec.c" ? execOut : forgeOut}"`, "-o", lib, repoPath(`test/fixtures/attack/${src}`)], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
  }
  spawnSync("install", ["-m", "0666", "/dev/null", forgeOut]);
  spawnSync("install", ["-m", "0666", "/dev/null", execOut]);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** A psql session as `role` running `sql`, in the background. */
function session(role: string, sql: string): Promise<{ stdout: string; stderr: string }> {
  const p = spawn(join(cluster.binDir, "psql"), ["-X", "-c", sql], {
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: role, PGDATABASE: "postgres" },
  });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d) => (stdout += d));
  p.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => p.on("exit", () => resolve({ stdout, stderr })));
}

test("code in one backend rewrites a parallel worker's status row: etl's parallel worker must not exec as alice", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, "create role alice login; create role etl superuser login");
    // The control: etl's parallel worker, its row untouched, may not exec.
    const control = psql(cluster, `load '${execLib}'; ${PARALLEL}`, { role: "etl" });
    assert.ok(control.ok, control.stderr);
    const controlExec = readFileSync(execOut, "utf8").trim();
    assert.match(controlExec, /^exec /, "the module ran in a parallel worker");
    assert.notEqual(controlExec, "exec 0", "etl's parallel worker may not exec");
    writeFileSync(execOut, "");
    // The attack: a second backend of etl rewrites etl's parallel worker rows to alice for 8 s.
    writeFileSync(args, `${query(cluster, "select 'etl'::regrole::oid")} ${query(cluster, "select 'alice'::regrole::oid")} 8\n`);
    const forger = session("etl", `load '${forgeLib}'`);
    await waitFor(() => readFileSync(forgeOut, "utf8").startsWith("ready"), 10_000, "the forger");
    // The forger races each worker's first routed call (it usually wins): five parallel queries.
    for (let i = 0; i < 5; i++) {
      const leader = psql(cluster, `load '${execLib}'; ${PARALLEL}`, { role: "etl" });
      assert.ok(leader.ok, leader.stderr);
    }
    const forged = await forger;
    assert.match(forged.stderr, /magic block/, "the forger's library was mapped");
    assert.match(readFileSync(forgeOut, "utf8"), /^forged [1-9]/, "a parallel worker's row was rewritten");
    const runs = readFileSync(execOut, "utf8").trim().split("\n");
    assert.equal(runs.length, 5, "the module ran in each parallel worker");
    assert.ok(!runs.includes("exec 0"), `etl's parallel worker exec'd as alice (${runs.join(", ")}):\n${s.stderr().slice(-3000)}`);
  } finally {
    await stop(s);
  }
});

// The same forge, of the worker's TYPE: no per-role rule is needed. A process without a client
// connection is classified by its row's backend type alone, and the other kinds have the global
// lists and their own: under this policy (only sessions are denied exec) the archiver's context
// may exec, as archive_command needs. etl's parallel worker, its row rewritten to "archiver"
// (PostgreSQL 15's B_ARCHIVER, 11), runs its module's shell.
// Fixed: a process's own `MyBackendType` (private, set by the postmaster's fork code) must agree
// with the row's type (src/host/backend-identity.ts, BACKEND_TYPES): a background worker whose
// row says "archiver" pins the most restrictive context.
const B_ARCHIVER = 11;
test("code in one backend rewrites a parallel worker's row type: etl's parallel worker must not get the archiver's context", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    // The roles are the first test's (the same cluster).
    writeFileSync(execOut, "");
    const control = psql(cluster, `load '${execLib}'; ${PARALLEL}`, { role: "etl" });
    assert.ok(control.ok, control.stderr);
    assert.match(readFileSync(execOut, "utf8").trim(), /^exec [1-9]/, "etl's parallel worker may not exec");
    writeFileSync(execOut, "");
    const etl = query(cluster, "select 'etl'::regrole::oid");
    writeFileSync(args, `${etl} ${etl} 8 ${B_ARCHIVER}\n`);
    writeFileSync(forgeOut, "");
    const forger = session("etl", `load '${forgeLib}'`);
    await waitFor(() => readFileSync(forgeOut, "utf8").startsWith("ready"), 10_000, "the forger");
    for (let i = 0; i < 5; i++) {
      const leader = psql(cluster, `load '${execLib}'; ${PARALLEL}`, { role: "etl" });
      assert.ok(leader.ok, leader.stderr);
    }
    await forger;
    assert.match(readFileSync(forgeOut, "utf8"), /^forged [1-9]/, "a parallel worker's row was rewritten");
    const runs = readFileSync(execOut, "utf8").trim().split("\n");
    assert.equal(runs.length, 5, "the module ran in each parallel worker");
    assert.ok(!runs.includes("exec 0"), `etl's parallel worker exec'd as the archiver (${runs.join(", ")}):\n${s.stderr().slice(-3000)}`);
    assert.match(s.stderr(), /inconsistent: the server's row says "archiver", the process is a background worker/);
  } finally {
    await stop(s);
  }
});
