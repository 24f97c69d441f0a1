// What a real PostgreSQL server calls, observed from outside: a throwaway cluster of the given
// bin directory started under `strace -f` as the server's user, a short SQL workload, a fast
// shutdown, and the set of syscall names in the trace. The reference the recall tests of
// `pg_seccomp analyze` compare against (test/analyze.test.ts), for every major.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { chmodSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, pgbench, postmasterPid, query, waitReady } from "../../src/postgres/cluster.js";
import { syscallNumber } from "../../src/syscalls/index.js";

export interface StraceObservation {
  /** Syscall names the trace shows, that the x86_64 table knows. */
  observed: Set<string>;
  /** Names strace printed that the table does not know (reported, not compared). */
  unknownNames: string[];
  /** Wall time of the traced run, start to shutdown. */
  seconds: number;
}

/**
 * The workload: start, `pgbench -i -s 1`, 2 × `transactions` TPC-B-like transactions, a 20 000-row
 * table with an index and an external sort, a DO block (plpgsql), VACUUM ANALYZE, CHECKPOINT, a
 * reload, fast shutdown.
 */
export async function straceWorkload(binDir: string, opts: { transactions?: number } = {}): Promise<StraceObservation> {
  const t0 = Date.now();
  const cluster = await createCluster({ binDir });
  try {
    const trace = join(cluster.root, "trace");
    chmodSync(cluster.root, 0o777);
    const proc = spawn("strace", ["-f", "-qq", "-o", trace, "-u", cluster.user.name, "--", join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { stdio: "ignore" });
    let alive = true;
    const exited = new Promise<void>((res) => proc.on("exit", () => ((alive = false), res())));
    try {
      await waitReady(cluster, () => alive, 120_000);
      const init = pgbench(cluster, ["-i", "-s", "1", "-q"]);
      assert.ok(init.ok, init.stderr);
      const run = pgbench(cluster, ["-c", "2", "-j", "2", "-t", String(opts.transactions ?? 200)]);
      assert.ok(run.ok, run.stderr);
      query(cluster, "CREATE TABLE t AS SELECT g, md5(g::text) FROM generate_series(1, 20000) g");
      query(cluster, "CREATE INDEX ON t (md5)");
      query(cluster, "SET work_mem = '64kB'; SELECT count(*) FROM (SELECT * FROM t ORDER BY md5) s");
      query(cluster, "DO $$ BEGIN PERFORM pg_sleep(0.1); END $$");
      query(cluster, "VACUUM ANALYZE");
      query(cluster, "CHECKPOINT");
      query(cluster, "SELECT pg_reload_conf()");
    } finally {
      // strace does not pass SIGINT on; a fast shutdown of the postmaster ends the trace.
      const pm = postmasterPid(cluster.dataDir);
      if (pm && alive) process.kill(pm, "SIGINT");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      await exited;
      clearTimeout(timer);
    }
    const observed = new Set<string>();
    const unknownNames = new Set<string>();
    for (const line of readFileSync(trace, "utf8").split("\n")) {
      const m = /^\d+\s+(?:<\.\.\. )?([a-z_][a-z0-9_]*)(?:\(| resumed>)/.exec(line);
      if (!m) continue;
      if (syscallNumber("x86_64", m[1]!) === undefined) unknownNames.add(m[1]!);
      else observed.add(m[1]!);
    }
    return { observed, unknownNames: [...unknownNames], seconds: (Date.now() - t0) / 1000 };
  } finally {
    destroyCluster(cluster);
  }
}
