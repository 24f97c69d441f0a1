// How profiles/learn-hot.conf was measured: which syscalls every process context makes on hot
// paths, so that `pg_seccomp learn` can allow them in the kernel and still learn the rest per
// context at near-unfiltered speed.
//
//   node dist/bench/learn-hot-calls.js      (as root; ~1 min)
//   BENCH_HOT_MAJOR=18 node dist/bench/learn-hot-calls.js   (another major: Debian's, else the embedded build)
//
// One throwaway cluster under `strace -f -c` (counts per syscall over every process of the
// server) while pgbench runs: TPC-B-like, select-only, and select-only with a new connection per
// transaction (-C: what every backend does at start), -c 4 -j 2, BENCH_HOT_SECONDS each. A
// syscall is hot when it has at least HOT_SHARE (0.2%) of the calls outside the floor; the report
// prints the list with its figures, for profiles/learn-hot.conf. (Recording through `learn
// --base profiles/floor.conf` would give the same counts per context, but at the supervisor's
// per-call cost for every call outside the floor.)

import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { spawn } from "node:child_process";
import { createCluster, destroyCluster, pgbench, postgresArgs, waitReady, postmasterPid } from "../src/postgres/cluster.js";
import { floorLists, readHotCalls } from "../src/policy/bundled-lists.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SECONDS = Number(process.env.BENCH_HOT_SECONDS ?? 10);
const HOT_SHARE = 0.002;

const work = mkdtempSync(join(tmpdir(), "pg_seccomp-hot-"));
chmodSync(work, 0o755);
const MAJOR = process.env.BENCH_HOT_MAJOR ? Number(process.env.BENCH_HOT_MAJOR) : undefined;
if (MAJOR !== undefined && !Number.isInteger(MAJOR)) throw new Error(`BENCH_HOT_MAJOR: "${process.env.BENCH_HOT_MAJOR}" is not a major version`);
const cluster = await createCluster(MAJOR !== undefined ? { major: MAJOR } : {});
try {
  const out = join(work, "strace.txt");
  const strace = spawn("strace", ["-f", "-c", "-o", out, "-u", cluster.user.name, "--", ...postgresArgs(cluster)], { stdio: "ignore" });
  let alive = true;
  const exited = new Promise((r) => strace.on("exit", () => ((alive = false), r(undefined))));
  await waitReady(cluster, () => alive, 120_000);
  const t = ["-c", "4", "-j", "2", "-T", String(SECONDS)];
  for (const args of [["-i", "-q", "-s", "2"], t, [...t, "-S"], [...t, "-S", "-C"]]) {
    const r = pgbench(cluster, args);
    if (!r.ok) throw new Error(`pgbench ${args.join(" ")}: ${r.stderr}`);
  }
  process.kill(postmasterPid(cluster.dataDir)!, "SIGINT");
  await exited;
  const floor = new Set(floorLists(readFileSync(join(ROOT, "profiles", "floor.conf"), "utf8")).allow);
  const rows: [string, number][] = [];
  for (const l of readFileSync(out, "utf8").split("\n")) {
    const f = l.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (f.length < 5 || !/^\d/.test(f[0]!) || f[f.length - 1] === "total") continue;
    rows.push([f[f.length - 1]!, Number(f[3])]);
  }
  const outside = rows.filter(([n]) => !floor.has(n)).sort((a, b) => b[1] - a[1]);
  const all = outside.reduce((n, [, c]) => n + c, 0);
  const version = spawnSync(join(cluster.binDir, "postgres"), ["--version"], { encoding: "utf8" }).stdout.trim();
  process.stdout.write(`# ${version}: ${all} calls outside the floor; pgbench ${t.join(" ")}: TPC-B-like, -S, -S -C (strace -f -c)\n`);
  for (const [name, c] of outside) process.stdout.write(`${name.padEnd(20)} ${String(c).padStart(9)} ${((100 * c) / all).toFixed(3).padStart(7)}%\n`);
  process.stdout.write(`hot (>= ${HOT_SHARE * 100}% of calls outside the floor): ${outside.filter(([, c]) => c / all >= HOT_SHARE).map(([n]) => n).join(", ")}\n`);
  // What the current default learning base would still send to the supervisor.
  const hot = new Set(readHotCalls());
  const toSupervisor = outside.filter(([n]) => !hot.has(n));
  const sent = toSupervisor.reduce((n, [, c]) => n + c, 0);
  const total = rows.reduce((n, [, c]) => n + c, 0);
  process.stdout.write(
    `outside the floor and profiles/learn-hot.conf (to the supervisor under learn's default base): ${sent} of ${total} calls (${((100 * sent) / total).toFixed(3)}%): ` +
      toSupervisor.slice(0, 15).map(([n, c]) => `${n} ${c}`).join(", ") + "\n",
  );
} finally {
  destroyCluster(cluster);
  rmSync(work, { recursive: true, force: true });
}
