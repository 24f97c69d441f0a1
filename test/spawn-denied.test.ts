// A denied exec of the shell that glibc's popen()/system() start (COPY ... TO PROGRAM,
// archive_command) reaches the SQL user and the server log as a signal ("terminated by signal
// 31: Bad system call"), not as glibc's ENOMEM ("Cannot allocate memory") or exit code 127.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();
let cluster: Cluster;
let server: RunningServer;
const log = logFile("spawn-denied.jsonl");

before(async () => {
  if (skip) return;
  cluster = await newCluster(["archive_mode = on", "archive_command = 'true'", "archive_timeout = 0"]);
  const policy = writePolicy(readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8") + `
session_syscall_error = '*, execve'
archiver_syscall_error = '*, execve'
`);
  server = await startReady(cluster, ["--policy", policy, "--log", log]);
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
});

test("COPY TO PROGRAM denied: the program is reported killed by SIGSYS, not 'Cannot allocate memory'", { skip }, async () => {
  const r = psql(cluster, "copy (select 1) to program 'cat > /dev/null'");
  assert.equal(r.ok, false);
  assert.match(r.stderr, /ERROR:  program "cat > \/dev\/null" failed\nDETAIL:  child process was terminated by signal (31: Bad system call|9: Killed)/, r.stderr);
  assert.doesNotMatch(r.stderr, /Cannot allocate memory/);
  // The same from a program reading: COPY FROM PROGRAM.
  query(cluster, "create table if not exists t (a int)");
  const from = psql(cluster, "copy t from program 'echo 1'");
  assert.match(from.stderr, /terminated by signal (31|9)/, from.stderr);
  // The violation log says which call, with the errno the policy gives and the signal used.
  await waitFor(() => {
    try {
      return /"signal":"SIG(SYS|KILL)"/.test(readFileSync(log, "utf8"));
    } catch {
      return false;
    }
  }, 10_000, "the log record");
  const rec = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.syscall === "execve" && e.context === "session");
  assert.equal(rec?.action, "error");
  assert.equal(typeof rec?.errno, "number");
  assert.match(String(rec?.signal), /^SIG(SYS|KILL)$/);
  // The session goes on.
  assert.equal(query(cluster, "select 'still here'"), "still here");
});

test("archive_command denied: the archiver reports the command killed by SIGSYS", { skip }, async () => {
  query(cluster, "create table if not exists w (a int); insert into w select generate_series(1, 1000); select pg_switch_wal()");
  await waitFor(() => /archive command was terminated by signal (31: Bad system call|9: Killed)/.test(server.stderr()), 30_000, `the archiver's report\n${server.stderr()}`);
  assert.doesNotMatch(server.stderr(), /archive command failed with exit code 127/);
});
