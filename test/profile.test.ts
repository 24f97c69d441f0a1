// The starter profile against what PostgreSQL does, not what a demo does: the broad workload
// (scripts/profile/workload.sh: pgbench, VACUUM FULL, parallel index builds, COPY, spilling
// sorts, parallel query, large objects, prepared transactions, LISTEN/NOTIFY, tablespaces,
// contrib extensions, logical replication, pg_basebackup and a streaming standby, archiving,
// reload) runs with the profile's default turned to kill, and nothing is denied or logged.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { destroyCluster, type Cluster } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, logFile, newCluster, startReady, stop, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();
let cluster: Cluster;
before(async () => {
  if (skip) return;
  const conf = readFileSync(repoPath("scripts/profile/server.conf"), "utf8").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  cluster = await newCluster(conf);
  appendFileSync(join(cluster.dataDir, "pg_hba.conf"), "local replication all trust\n");
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

test("the starter profile with default kill runs the broad workload without a single denial or log entry", { skip, timeout: 600_000 }, async () => {
  const profile = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");
  const policy = writePolicy(profile + "\nglobal_syscall_default = 'kill'\n", "starter-kill.conf");
  const work = join(cluster.root, "work");
  mkdirSync(work);
  chownSync(work, cluster.user.uid, cluster.user.gid);
  const primaryLog = logFile("profile-primary.jsonl");
  const standbyLog = join(work, "standby.jsonl");
  const s = await startReady(cluster, ["--policy", policy, "--log", primaryLog]);
  let wl;
  try {
    wl = spawnSync("bash", [repoPath("scripts/profile/workload.sh")], {
      encoding: "utf8",
      timeout: 480_000,
      env: {
        ...process.env, PGBIN: cluster.binDir, WORKDIR: work, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres",
        SERVER_USER: cluster.user.name,
        // The standby runs under the same policy, started by pg_seccomp as the postgres user.
        STANDBY_LAUNCHER: `${process.execPath} ${BIN} run --policy ${policy} --log ${standbyLog} --`,
      },
    });
  } finally {
    const r = await stop(s);
    assert.equal(r.signal, null, s.stderr());
  }
  assert.equal(wl.status, 0, `workload failed:\n${wl.stderr.slice(-3000)}`);
  assert.match(wl.stderr, /workload: done/);
  for (const log of [primaryLog, standbyLog]) {
    const entries = existsSync(log) ? readFileSync(log, "utf8").trim() : "";
    assert.equal(entries, "", `${log} must be empty:\n${entries.slice(0, 2000)}`);
  }
  assert.doesNotMatch(s.stderr(), /terminated by signal|Bad system call/);
  assert.ok(existsSync(join(work, "standby.log")));
  const standby = readFileSync(join(work, "standby.log"), "utf8");
  assert.match(standby, /ready to accept read-only connections/, "the filtered standby ran");
  assert.match(standby, /started streaming WAL/, "its walreceiver streamed from the primary's walsender");
  assert.doesNotMatch(standby, /Bad system call|FATAL:  could not/);
});
