// terminate on a real server (docs/policy.md, "Ending a session, not the server"): a session
// whose call the policy terminates gets the errno and then SIGTERM, as from
// pg_terminate_backend; every other session stays connected and the postmaster restarts
// nothing. COPY TO PROGRAM's exec is the call a session can make from SQL.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { findPostmaster } from "../src/inspect/status.js";

const skip = integrationSkip();
let cluster: Cluster;
let server: RunningServer;
const log = logFile("terminate.jsonl");

before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const policy = writePolicy(readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8") + "\nsession_syscall_terminate = 'execve'\n");
  server = await startReady(cluster, ["--policy", policy, "--log", log]);
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
});

/** A second session that stays open: psql reading statements from a pipe. */
function openSession(c: Cluster): { proc: ChildProcessWithoutNullStreams; ask: (sql: string) => Promise<string> } {
  const proc = spawn(join(c.binDir, "psql"), ["-X", "-A", "-t", "-q"], {
    env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres" },
  });
  let out = "";
  proc.stdout.on("data", (d: Buffer) => (out += d.toString()));
  proc.stderr.on("data", (d: Buffer) => (out += d.toString()));
  const ask = async (sql: string) => {
    const mark = `done-${Math.random().toString(36).slice(2)}`;
    const start = out.length;
    proc.stdin.write(`${sql};\nselect '${mark}';\n`);
    await waitFor(() => out.includes(mark, start), 20_000, `psql's answer to ${sql}\n${out}`);
    return out.slice(start, out.indexOf(mark, start)).trim();
  };
  return { proc, ask };
}

test("session_syscall_terminate = 'execve': COPY TO PROGRAM ends that session only; no crash restart", { skip }, async () => {
  const other = openSession(cluster);
  try {
    const otherPid = await other.ask("select pg_backend_pid()");
    assert.match(otherPid, /^\d+$/);
    const r = psql(cluster, "select 'before'; copy (select 1) to program 'true'; select 'after'");
    assert.match(r.stdout, /before/);
    assert.doesNotMatch(r.stdout, /after/, "the session was ended");
    assert.match(r.stderr, /terminating connection due to administrator command|server closed the connection/, r.stderr);
    // The other session is still connected, with the same backend.
    assert.equal(await other.ask("select pg_backend_pid()"), otherPid);
    assert.equal(query(cluster, "select 'new sessions work'"), "new sessions work");
    // No crash restart: the postmaster did not see a backend die of a signal.
    assert.doesNotMatch(server.stderr(), /terminated by signal|terminating any other active server processes|all server processes terminated; reinitializing/, server.stderr());
    assert.match(server.stderr(), /terminating connection due to administrator command/);
    // The violation log names the call, the action, the errno and the signal.
    await waitFor(() => {
      try {
        return /"action":"terminate"/.test(readFileSync(log, "utf8"));
      } catch {
        return false;
      }
    }, 10_000, "the log record");
    const rec = readFileSync(log, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.action === "terminate");
    assert.equal(rec?.syscall, "execve");
    assert.equal(rec?.context, "session");
    assert.equal(rec?.signal, "SIGTERM");
    assert.equal(typeof rec?.errno, "number");
    // status --pid takes this server's postmaster for one without any run state: its exe is
    // postgres and the postmaster.pid in its cwd names it (a backend's pid leads to it too).
    const pm = Number(readFileSync(join(cluster.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    assert.equal(findPostmaster({ pid: pm }, "/proc", join(cluster.root, "no-run-state")).pid, pm);
    assert.equal(findPostmaster({ pid: Number(otherPid) }, "/proc", join(cluster.root, "no-run-state")).pid, pm);
    assert.throws(() => findPostmaster({ pid: other.proc.pid! }, "/proc", join(cluster.root, "no-run-state")), /is not a PostgreSQL postmaster: it runs psql/);
  } finally {
    other.proc.stdin.end();
    other.proc.kill();
  }
});
