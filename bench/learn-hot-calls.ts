// How profiles/learn-hot.conf was measured: which syscalls every process context makes on hot
// paths, so that `pg_seccomp learn` can allow them in the kernel and still learn the rest per
// context at near-unfiltered speed.
//
//   node dist/bench/learn-hot-calls.js      (as root; ~1 min)
//
// One throwaway cluster, `pg_seccomp learn --base profiles/floor.conf` (the floor is allowed in
// the kernel; every other call goes to the supervisor and is counted per context) while pgbench
// runs (init, TPC-B-like and select-only, -c 4 -j 2, BENCH_HOT_SECONDS each), then the learned
// file's counts: per syscall, the calls and the share of all recorded calls, and the contexts.
// A syscall is hot when it has at least HOT_SHARE of the calls (0.5%); the report prints the
// list to paste into profiles/learn-hot.conf with its figures.

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createCluster, destroyCluster, postgresArgs } from "../src/postgres/cluster.js";
import { parseLearnedPolicy } from "../src/learn/learn.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SECONDS = Number(process.env.BENCH_HOT_SECONDS ?? 10);
const HOT_SHARE = 0.005;

const work = mkdtempSync(join(tmpdir(), "pg_seccomp-hot-"));
const cluster = await createCluster();
try {
  const out = join(work, "hot.conf");
  const pb = `pgbench -c 4 -j 2 -T ${SECONDS}`;
  const workload = `pgbench -i -q -s 2 && ${pb} && ${pb} -S`;
  const r = spawnSync(process.execPath, [CLI, "learn", "-o", out, "--base", join(ROOT, "profiles", "floor.conf"), "--no-timers", "--no-crash-round", "--workload", workload, "--", ...postgresArgs(cluster)], {
    encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
  });
  if (r.status !== 0 && r.status !== 2) throw new Error(`learn failed (${r.status}):\n${r.stderr}`);
  const learned = parseLearnedPolicy(readFileSync(out, "utf8")).learned;
  const total = new Map<string, { count: number; contexts: string[] }>();
  let all = 0;
  for (const [ctx, calls] of learned) {
    for (const [name, c] of calls) {
      const t = total.get(name) ?? { count: 0, contexts: [] };
      t.count += c.count;
      t.contexts.push(ctx);
      total.set(name, t);
      all += c.count;
    }
  }
  const rows = [...total].sort((a, b) => b[1].count - a[1].count);
  process.stdout.write(`# ${all} calls recorded outside the floor; workload: ${workload}\n`);
  for (const [name, t] of rows) {
    process.stdout.write(`${name.padEnd(20)} ${String(t.count).padStart(9)} ${((100 * t.count) / all).toFixed(2).padStart(6)}%  ${t.contexts.sort().join(" ")}\n`);
  }
  process.stdout.write(`hot (>= ${HOT_SHARE * 100}% of calls): ${rows.filter(([, t]) => t.count / all >= HOT_SHARE).map(([n]) => n).join(", ")}\n`);
} finally {
  destroyCluster(cluster);
  rmSync(work, { recursive: true, force: true });
}
