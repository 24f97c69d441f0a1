// Attack on the row cross-check's load address (src/host/backend-identity.ts, executableBase): the
// reader found the postgres executable in the POSTMASTER's /proc/PID/maps by the device and inode
// of the file it read the symbols from, at file offset 0, and took the first such mapping as the
// executable's base for every child. The postmaster's maps change only by its own code, and a
// superuser puts code there with SQL alone: ALTER SYSTEM SET shared_preload_libraries to a module
// (here written by root in a directory of the test's; the superuser could write it with lo_export
// as the server's user), loaded at the server's next start. The module (postmaster-decoy.c) maps
// postgres itself at offset 0 below the real executable. Picking that mapping, the reader looked
// for MyProcPort where nothing is, and every session's check read "cannot be read": alice, who
// may exec, got the most restrictive context; a module that also put a fake Port there would
// have made every row's names read as it liked. Fixed: the load address is the kernel's AT_ENTRY
// for the postmaster (/proc/PID/auxv) less the executable's entry point, and the maps must show
// the file at offset 0 there.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const SERVER_HEADERS = "/usr/include/postgresql/15/server";
const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : !existsSync(join(SERVER_HEADERS, "fmgr.h")) ? "no PostgreSQL 15 server headers" : false);
const profile = readFileSync(hostProfilePath(), "utf8");
const policyText = `${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`;
const COPY = "copy (select 1) to program 'cat > /dev/null'";

let cluster: Cluster;
let dir: string;
let decoy: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-postmaster-base-"));
  chmodSync(dir, 0o755);
  decoy = join(dir, "postmaster-decoy.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-I${SERVER_HEADERS}`, "-o", decoy, repoPath("test/fixtures/attack/postmaster-decoy.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a preloaded module maps postgres at offset 0 below the executable in the postmaster: rows are still cross-checked at the right address", {
  skip,
  timeout: 180_000,
}, async () => {
  let s = await startReady(cluster, ["--policy", writePolicy(policyText)]);
  try {
    query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program");
    query(cluster, `alter system set shared_preload_libraries = '${decoy}'`);
  } finally {
    await stop(s);
  }
  s = await startReady(cluster, ["--policy", writePolicy(policyText)]);
  try {
    const maps = readFileSync(`/proc/${postmasterPid(cluster.dataDir)}/maps`, "utf8");
    const postgres = maps.split("\n").filter((l) => / 00000000 \S+ \d+ +\S*\/postgres$/.test(l));
    assert.ok(postgres.length >= 2 && postgres[0]!.startsWith("200000000-"), `the decoy is the first offset-0 mapping of postgres:\n${postgres.join("\n")}`);
    const alice = psql(cluster, COPY, { role: "alice" });
    if (!alice.ok) await new Promise((r) => setTimeout(r, 1000)); // the launcher's lines about it
    assert.ok(alice.ok, `alice may still exec: ${alice.stderr}\n${s.stderr().slice(-2000)}`);
    const bob = spawnSync(join(cluster.binDir, "psql"), ["-X", "-c", COPY], { env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "bob", PGDATABASE: "postgres" }, encoding: "utf8" });
    assert.notEqual(bob.status, 0, "bob may not");
    assert.doesNotMatch(s.stderr(), /cannot be read to confirm/);
  } finally {
    query(cluster, "alter system reset shared_preload_libraries");
    await stop(s);
  }
});
