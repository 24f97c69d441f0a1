// Attack on the exec gate's exception for the server's own code (docs/design.md, "The exec gate
// and the server's own modules"): an unclassified process may map the installation's plpgsql.so
// without being classified, because PL/pgSQL "runs only SQL and its interpreter".
// attacks/server-code.test.ts (b) shows a C function declared on plpgsql.so reaches no libc
// symbol (PostgreSQL asks for the symbol's PG_FUNCTION_INFO_V1 record). A background worker's
// entry point is looked up without that record (load_external_function): code loaded into a
// backend (a superuser's LOAD) registers a dynamic background worker whose library is plpgsql.so
// and whose function is a libc symbol, which dlsym finds through plpgsql.so's dependencies. The
// worker maps only plpgsql.so (the exception: no classification) and calls the libc function with
// an argument the attacker chose (a pointer valid in every fork of the postmaster). Here it is
// perror(DataDir), whose line (the path, then errno's text) in the server's log shows the call ran; setcontext() with a
// pointer into shared memory would load every register (a return-oriented chain), still with no
// mapping the gate sees.
// Fixed: the exception is a client backend's only (its own MyBackendType, read while the call is
// held: supervisor-worker.ts, serverCodeMapping); a background worker's mapping of plpgsql.so
// classifies it, and a background worker without a row is pinned by its own type then.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const SERVER_HEADERS = "/usr/include/postgresql/15/server";
const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : !existsSync(join(SERVER_HEADERS, "postmaster/bgworker.h")) ? "no PostgreSQL 15 server headers" : false);
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let dir: string;
let lib: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-servercode-bgworker-"));
  chmodSync(dir, 0o755);
  lib = join(dir, "bgworker-plpgsql.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-I${SERVER_HEADERS}`, `-DFUNCTION="perror"`, "-o", lib, repoPath("test/fixtures/attack/bgworker-plpgsql.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a background worker on plpgsql.so whose entry point is a libc symbol: no libc call of the attacker's runs unclassified", {
  skip,
  timeout: 120_000,
}, async () => {
  const was = process.env.PG_SECCOMP_STATS;
  process.env.PG_SECCOMP_STATS = "1";
  let s;
  try {
    s = await startReady(cluster, ["--policy", writePolicy(`${profile}\nsession_syscall_error = '*, execve'\n`)]);
  } finally {
    if (was === undefined) delete process.env.PG_SECCOMP_STATS;
    else process.env.PG_SECCOMP_STATS = was;
  }
  const dataDir = query(cluster, "show data_directory");
  // perror's line: the path, ": ", and the text of whatever errno the worker had.
  const ranPerror = (text: string) => text.split("\n").some((l) => l.startsWith(`${dataDir}: `));
  try {
    query(cluster, "create role etl superuser login");
    // The postmaster logs a background worker's exit at DEBUG1.
    query(cluster, "alter system set log_min_messages = debug1");
    query(cluster, "select pg_reload_conf()");
    const r = psql(cluster, `load '${lib}'`, { role: "etl" });
    assert.ok(r.ok, r.stderr);
    // The worker runs and exits: its exit (or its line) is in the server's log within seconds.
    await waitFor(() => /background worker "bgworker-plpgsql" \(PID \d+\) exited/.test(s.stderr()), 20_000, `the background worker's exit:\n${s.stderr().slice(-3000)}`);
  } finally {
    query(cluster, "alter system reset log_min_messages");
    await stop(s);
  }
  const line = s.stderr().split("\n").find((l) => l.startsWith('{"pg_seccomp_stats"'));
  assert.ok(line, "the launcher's stats line");
  const stats = (JSON.parse(line) as { pg_seccomp_stats: { serverCodeMappings: number; classifications: number } }).pg_seccomp_stats;
  // The exception is a client backend's only: the worker's mapping of plpgsql.so classified it
  // (pinned as a background worker before its entry point ran), as etl's LOAD classified etl.
  assert.equal(stats.serverCodeMappings, 0, `plpgsql.so was mapped without classification: ${line}`);
  assert.ok(stats.classifications >= 2, `the background worker was classified before its entry point ran: ${line}`);
  // The call itself still runs (perror harms nothing), now in a pinned context.
  assert.ok(ranPerror(s.stderr()), `the background worker ran its entry point:\n${s.stderr().slice(-3000)}`);
});
