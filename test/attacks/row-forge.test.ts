// Attack: code in one backend rewrites the shared-memory status row of ANOTHER backend that is
// not yet classified, so that its classification (pg_stat_get_activity's usesysid, read when its
// first context-dependent call is held) names a role that may exec. The status array is in the
// main shared memory every backend maps read-write; the exec gate keeps foreign code out of the
// unclassified process itself, not out of its row. Attacker: code loaded into a backend, however
// it got there (a memory-safety exploit by a role that is not a superuser, an extension's bug;
// here, as in kernel-contexts.test.ts, a superuser's LOAD of test/fixtures/attack/row-forge.c,
// whose constructor does it: its backend is classified as etl, which may not exec), plus a login role (bob) whose own
// session waits, unclassified, until its row has been rewritten.
// Fixed: classification checks the row against who the process itself logged in as, from its
// private memory, which no other server process can write (src/host/backend-identity.ts): a
// row that names another role pins the most restrictive context, with an "inconsistent" note.
// PL/pgSQL (which an unclassified process now maps without classification, be67428) does not
// change this: an idle connection was always unclassified until its first routed call.

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
const COPY = "copy (select 1) to program 'cat > /dev/null'";

let cluster: Cluster;
let dir: string;
let lib: string;
let args: string;
let out: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-rowforge-"));
  chmodSync(dir, 0o755);
  lib = join(dir, "row-forge.so");
  args = join(dir, "args.txt");
  out = join(dir, "out.txt");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-DARGS="${args}"`, `-DOUT="${out}"`, "-o", lib, repoPath("test/fixtures/attack/row-forge.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  spawnSync("install", ["-m", "0666", "/dev/null", out]);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** bob's session: waits `seconds` (no routed call), then execs; resolves with psql's output. */
function bobWaitsThenExecs(seconds: number): Promise<{ stdout: string; stderr: string }> {
  const p = spawn(join(cluster.binDir, "psql"), ["-X", "-v", "ON_ERROR_STOP=1", "-c", `select pg_sleep(${seconds})`, "-c", COPY], {
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "bob", PGDATABASE: "postgres" },
  });
  let stdout = "";
  let stderr = "";
  p.stdout.on("data", (d) => (stdout += d));
  p.stderr.on("data", (d) => (stderr += d));
  return new Promise((resolve) => p.on("exit", () => resolve({ stdout, stderr })));
}

test("code in one backend rewrites an unclassified backend's status row: bob's session must not exec as alice", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program; create role etl superuser login");
    // The control: bob's own session may not exec.
    const control = await bobWaitsThenExecs(0);
    assert.match(control.stderr, /program "cat > \/dev\/null" failed|could not execute|Operation not permitted|Permission denied/i, `bob's exec is denied: ${control.stderr}`);
    // The attack: bob connects and waits; etl's backend (classified as etl: it mapped the
    // library) names alice in bob's row; then bob's session execs.
    const bob = bobWaitsThenExecs(6);
    let pid = "";
    await waitFor(() => (pid = query(cluster, "select pid from pg_stat_activity where usename = 'bob'")) !== "", 3_000, "bob's row");
    writeFileSync(args, `${pid} ${query(cluster, "select 'alice'::regrole::oid")}\n`);
    const load = psql(cluster, `load '${lib}'`, { role: "etl" });
    assert.match(load.stderr, /magic block/, "the library was mapped (its constructor ran, then LOAD refused it)");
    assert.equal(readFileSync(out, "utf8").trim(), "forged 1", "bob's row was found and rewritten");
    const r = await bob;
    assert.doesNotMatch(r.stdout, /COPY 1/, `bob's session exec'd as alice:\n${r.stdout}\n${r.stderr}`);
    // Refused as the forged row's inconsistency, named in the launcher's output.
    await waitFor(() => /inconsistent: the server's row names role "alice", the process logged in as "bob"/.test(s.stderr()), 10_000, "the launcher's note").catch(() => {
      throw new Error(`no "inconsistent" note in the launcher's output:\n${s.stderr().slice(-3000)}`);
    });
  } finally {
    await stop(s);
  }
});

// The same forge, of the backend TYPE: bob's row keeps his role and database (so the names check
// passes) but says "walsender" (PostgreSQL 15's B_WAL_SENDER, 9). A client connection is a client
// backend or a walsender by the kernel's word alike, and a walsender with a database gets the
// walsender's lists (`walsender_syscall_*`, which may open calls sessions may not make: `check`
// warns), so bob's session would get them. Fixed: whether the process is a walsender is read from
// its own memory too (`am_walsender`, set from its startup packet's `replication` option).
const B_WAL_SENDER = 9;
test("code in one backend rewrites an unclassified backend's row type: bob's session must not get the walsender's lists", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nwalsender_syscall_allow = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    // The roles are the first test's (the same cluster).
    const control = await bobWaitsThenExecs(0);
    assert.match(control.stderr, /program "cat > \/dev\/null" failed|could not execute|Operation not permitted|Permission denied/i, `bob's exec is denied: ${control.stderr}`);
    writeFileSync(out, "");
    const bob = bobWaitsThenExecs(6);
    let pid = "";
    await waitFor(() => (pid = query(cluster, "select pid from pg_stat_activity where usename = 'bob'")) !== "", 3_000, "bob's row");
    writeFileSync(args, `${pid} ${query(cluster, "select 'bob'::regrole::oid")} ${B_WAL_SENDER}\n`);
    const load = psql(cluster, `load '${lib}'`, { role: "etl" });
    assert.match(load.stderr, /magic block/, "the library was mapped (its constructor ran, then LOAD refused it)");
    assert.equal(readFileSync(out, "utf8").trim(), "forged 1", "bob's row was found and rewritten");
    const r = await bob;
    assert.doesNotMatch(r.stdout, /COPY 1/, `bob's session exec'd as a walsender:\n${r.stdout}\n${r.stderr}\n${s.stderr().slice(-2000)}`);
    await waitFor(() => /inconsistent: the server's row says "walsender", the process did not ask for replication/.test(s.stderr()), 10_000, "the launcher's note").catch(() => {
      throw new Error(`no "inconsistent" note in the launcher's output:\n${s.stderr().slice(-3000)}`);
    });
  } finally {
    await stop(s);
  }
});
