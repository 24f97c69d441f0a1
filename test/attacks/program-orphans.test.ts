// A SQL role that may run programs (COPY ... TO PROGRAM) against the program lists
// (program_syscall_*.session, docs/policy.md "Programs the server runs"): a program that leaves
// its parent (forks, and the parent exits: the kernel reparents the child to init) is still a
// program of that session, and keeps the program lists' denials.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";

const skip = integrationSkip() || (existsSync("/usr/bin/perl") ? false : "no perl");
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let server: RunningServer;
let dir: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-orphan-"));
  chmodSync(dir, 0o1777);
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\nprogram_syscall_error.session = '*, socket, connect'\nprogram_syscall_allow.session = '*, execve'\n");
  server = await startReady(cluster, ["--policy", policy, "--log", logFile("orphan.jsonl")]);
  query(cluster, "create role alice login in role pg_execute_server_program");
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** perl that writes socket()'s outcome to `out`; `orphan`: it forks first, its parent exits at once, and the child waits until it is init's. */
function program(out: string, orphan: boolean): string {
  // It reads COPY's row first: a program that exits before COPY has written breaks its pipe.
  const body = `1 while <STDIN>; ${orphan ? "exit if fork; sleep 1 while getppid() != 1 && $n++ < 50;" : ""} open F, ">", "${out}"; print F (socket(S, 2, 1, 0) ? "ok" : 0 + $!), "\\n"; close F`;
  return `copy (select 1) to program 'perl -e ''${body.replace(/'/g, "''")}'''`;
}

test("a session's program may not open a socket (program_syscall_error.session), in its parent's process tree", { skip }, async () => {
  const out = join(dir, "direct.txt");
  const r = psql(cluster, program(out, false), { role: "alice" });
  assert.ok(r.ok, r.stderr);
  await waitFor(() => existsSync(out) && readFileSync(out, "utf8").includes("\n"), 10_000, "the program's report");
  assert.equal(readFileSync(out, "utf8").trim(), "1", "socket() failed with EPERM");
});

test("a session's program that leaves its parent (reparented to init) still may not open a socket", { skip }, async () => {
  const out = join(dir, "orphan.txt");
  const r = psql(cluster, program(out, true), { role: "alice" });
  assert.ok(r.ok, r.stderr);
  await waitFor(() => existsSync(out) && readFileSync(out, "utf8").includes("\n"), 15_000, "the orphan's report");
  assert.equal(readFileSync(out, "utf8").trim(), "1", "the orphaned program opened a socket (ok) or failed otherwise than EPERM");
});
