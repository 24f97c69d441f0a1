// Fail closed: if the launcher (the supervisor) dies, the server must stop (parent-death signal),
// every transaction committed before must survive, and a restart must work.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { destroyCluster, postmasterPid, query, type Cluster } from "../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, waitFor, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { hostArch } from "../src/syscalls/index.js";

const skip = integrationSkip();
let cluster: Cluster;
before(async () => {
  if (!skip) cluster = await newCluster(["fsync = on", "synchronous_commit = on"]);
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

test("killing the supervisor under pgbench load stops the server; committed rows survive; a restart works", { skip }, async () => {
  // A policy with something for the supervisor to answer (sessions may not exec), so a listener exists.
  const policy = writePolicy(readFileSync(repoPath(`profiles/postgresql-15-${hostArch()}.conf`), "utf8") + "\nsession_syscall_error = '*, execve'\n");
  const s = await startReady(cluster, ["--policy", policy]);
  const pm = postmasterPid(cluster.dataDir)!;
  query(cluster, "create table committed (id int primary key)");
  const env = { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" };
  execFile(join(cluster.binDir, "pgbench"), ["-i", "-s", "1", "-q"], { env }, () => undefined);
  await new Promise((r) => setTimeout(r, 1500));
  const load = spawn(join(cluster.binDir, "pgbench"), ["-c", "4", "-j", "2", "-T", "60"], { env, stdio: "ignore" });

  // Commit rows one by one; remember which commits the server acknowledged.
  const acknowledged: number[] = [];
  let stopWriting = false;
  const writer = (async () => {
    for (let id = 1; !stopWriting; id++) {
      const ok = await new Promise<boolean>((res) =>
        execFile(join(cluster.binDir, "psql"), ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", `insert into committed values (${id})`], { env }, (err) => res(!err)),
      );
      if (ok) acknowledged.push(id);
      else break;
    }
  })();
  await waitFor(() => acknowledged.length >= 20, 30_000, "some commits");

  s.proc.kill("SIGKILL"); // the launcher and its supervisor thread die at once
  await waitFor(() => !alive(pm), 30_000, "the postmaster to stop after its supervisor died");
  stopWriting = true;
  await writer;
  load.kill("SIGKILL");
  assert.ok(acknowledged.length >= 20);

  // Restart under the same policy: crash recovery, then every acknowledged commit is there.
  const again = await startReady(cluster, ["--policy", policy]);
  try {
    const ids = new Set(query(cluster, "select id from committed").split("\n").filter(Boolean).map(Number));
    const lost = acknowledged.filter((id) => !ids.has(id));
    assert.deepEqual(lost, [], "no acknowledged commit may be lost");
    assert.equal(query(cluster, "select count(*) > 0 from pgbench_history"), "t");
  } finally {
    await stop(again);
  }
  assert.equal(existsSync(join(cluster.dataDir, "postmaster.pid")), false);
});
