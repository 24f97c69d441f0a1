// A starter profile against what PostgreSQL does, not what a demo does: the broad workload
// (scripts/profile/workload.sh) on a primary started under the profile with its default turned
// to kill, and a streaming standby under the same policy, and nothing may be denied or logged.
// Shared by test/profile.test.ts (15) and test/majors.test.ts (the other majors).

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, findPgBinDir, freePort } from "../../src/postgres/cluster.js";
import { profileServerConf } from "../../scripts/profile/server-conf.js";
import { hostArch } from "../../src/syscalls/index.js";
import { BIN, logFile, startReady, stop, writePolicy } from "./server.js";
import { repoPath } from "./paths.js";

export async function profileWorkloadUnderKill(major: number, opts: { timeoutMs?: number } = {}): Promise<void> {
  const binDir = findPgBinDir(major);
  const cluster = await createCluster({ binDir, conf: profileServerConf(major) });
  try {
    appendFileSync(join(cluster.dataDir, "pg_hba.conf"), "local replication all trust\n");
    // The machine's arch's profile (the aarch64 lab runs this on aarch64).
    const profile = readFileSync(repoPath(`profiles/postgresql-${major}-${hostArch()}.conf`), "utf8");
    const policy = writePolicy(profile + "\nglobal_syscall_default = 'kill'\n", `starter-${major}-kill.conf`);
    const work = join(cluster.root, "work");
    mkdirSync(work);
    chownSync(work, cluster.user.uid, cluster.user.gid);
    const primaryLog = logFile(`profile-${major}-primary.jsonl`);
    const standbyLog = join(work, "standby.jsonl");
    const s = await startReady(cluster, ["--policy", policy, "--log", primaryLog]);
    let wl;
    try {
      wl = spawnSync("bash", [repoPath("scripts/profile/workload.sh")], {
        encoding: "utf8",
        timeout: opts.timeoutMs ?? 480_000,
        env: {
          ...process.env, PGBIN: cluster.binDir, WORKDIR: work, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres",
          SERVER_USER: cluster.user.name,
          // A port the OS says is free, not PGPORT + 1 (another cluster of the suite may hold it).
          STANDBY_PORT: String(await freePort()),
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
      // Summary records count kernel records of other processes of the server's user (another
      // cluster's on a shared machine): not violations of this server.
      const entries = existsSync(log) ? readFileSync(log, "utf8").split("\n").filter((l) => l.trim() && !l.includes('"context":"unattributed"')).join("\n") : "";
      assert.equal(entries, "", `${log} must be empty:\n${entries.slice(0, 2000)}`);
    }
    assert.doesNotMatch(s.stderr(), /terminated by signal|Bad system call/);
    assert.match(s.stderr(), new RegExp(`starting PostgreSQL ${major}\\.`));
    assert.ok(existsSync(join(work, "standby.log")));
    const standby = readFileSync(join(work, "standby.log"), "utf8");
    assert.match(standby, /ready to accept read-only connections/, "the filtered standby ran");
    assert.match(standby, /started streaming WAL/, "its walreceiver streamed from the primary's walsender");
    assert.doesNotMatch(standby, /Bad system call|FATAL:  could not/);
    if (major >= 17) assert.match(wl.stderr, /standby processes: .*slotsync worker/, "the standby's slot sync worker ran under the policy");
  } finally {
    destroyCluster(cluster);
  }
}
