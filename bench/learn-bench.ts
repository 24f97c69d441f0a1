// What learning costs: pgbench against the same server unfiltered, under `pg_seccomp learn`
// (its default base: the floor plus the hot-path calls; the starter profile as base; --base
// none) and under `strace -f`, in the same run.
//
//   npm run bench:learn                 (as root: the server runs as the postgres OS user)
//   BENCH_QUICK=1 npm run bench:learn   (a smoke run: scale 2, -T 3, one round)
//
// Servers start and stop through bench/support/server.ts (the same code as bench:pgbench and
// bench:supervisor), each in a cgroup of its own. One cluster, `pgbench -i -s SCALE` once.
// Modes, all running `postgres -D DATA` as the postgres user with the same environment:
//
//   A   unfiltered: setpriv --reuid/--regid/--init-groups, exec'd (the spawned pid is the postmaster);
//   LH  `pg_seccomp learn -o TMP/learned-LH.conf --no-timers --no-crash-round -- postgres -D DATA`
//       (the default base: profiles/floor.conf + profiles/learn-hot.conf in the kernel, every
//       other call to the supervisor and learned per context);
//   L   the same with `--base starter` (the bundled starter profile: everything PostgreSQL
//       uses is allowed in the kernel, so almost nothing is learned per context);
//   L0  the same with `--base none`: every call goes to the supervisor;
//   S   `strace -f -qq -o /dev/null -u postgres -- postgres -D DATA` (strace as root).
//
// Per round, for each workload (select-only `-S` and TPC-B-like, `-c 4 -j 2 -T SECONDS`), the
// modes run one after the other in an order that changes from round to round: the rows of a
// cyclic Latin square over A LH S L L0, so every mode runs in every position once per 5 rounds.
// (A plain rotation of four modes kept L right after A in 3 rounds of 4; a first run with it
// showed TPC-B-like L ÷ A of 1.03–1.27, most likely drift between adjacent runs.) Each run
// starts the server afresh, waits for pg_isready, runs an unmeasured select-only warm-up, the measured
// pgbench, and stops the server with SIGINT (for L and L0: SIGINT to `learn`, which forwards it
// and then writes its file; the bench checks the file was written; for S: SIGINT to the postmaster). Reported: median TPS per
// mode, per-round ratios to A (median, min–max), learn's cost as a fraction of strace's,
// (1 − L/A) / (1 − S/A), and the same for CPU time per transaction of the server plus its
// tracer or supervisor (the cgroup's counter; the wrapper alone, the `learn` or `strace`
// process, from utime + stime in /proc/PID/stat), and for each learn mode the calls that went
// to its supervisor, per syscall (its violation log). It never asserts a timing; it fails only
// when something does not work.
//
// Environment (defaults; BENCH_QUICK=1 changes them to the second value):
//   BENCH_LEARN_SECONDS  -T of each measured run  (10 / 3)
//   BENCH_LEARN_ROUNDS   rounds                   (3 / 1)
//   BENCH_LEARN_WARMUP   seconds of -S warm-up after each start (2 / 1)
//   BENCH_LEARN_SCALE    pgbench -i -s            (10 / 2)
//   BENCH_LEARN_OUT      also write the markdown report to this file

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";

import { createCluster, destroyCluster, pgbench, query, type Cluster } from "../src/postgres/cluster.js";
import { log, machine as machineInfo, mdTable, median, nonNegativeInt, positiveInt } from "./support/report.js";
import {
  childrenOf, CLI, currentServer, serverCpuUs, SETPRIV, startServer as startBenchServer, stopServer as stopBenchServer,
  type BenchServer, type ServerSpec,
} from "./support/server.js";

const QUICK = process.env.BENCH_QUICK === "1";
const int = (name: string, dflt: number, min = 1) => (min === 0 ? nonNegativeInt : positiveInt)(process.env[name], dflt);
const SECONDS = int("BENCH_LEARN_SECONDS", QUICK ? 3 : 10);
const ROUNDS = int("BENCH_LEARN_ROUNDS", QUICK ? 1 : 3);
const WARMUP = int("BENCH_LEARN_WARMUP", QUICK ? 1 : 2, 0);
const SCALE = int("BENCH_LEARN_SCALE", QUICK ? 2 : 10);
const OUT = process.env.BENCH_LEARN_OUT;
const CLIENTS = 4;
const JOBS = 2;

type ModeId = "A" | "LH" | "L" | "L0" | "S";
const MODES: { id: ModeId; label: string }[] = [
  { id: "A", label: "unfiltered" },
  { id: "LH", label: "learn (default base: floor + hot-path calls)" },
  { id: "L", label: "learn --base starter" },
  { id: "L0", label: "learn --base none" },
  { id: "S", label: "strace -f" },
];
const WORKLOADS = [
  { id: "select", label: "select-only (`-S`)", args: ["-S"] },
  { id: "tpcb", label: "TPC-B-like (default)", args: [] as string[] },
];

/**
 * Round r's order: row r mod 5 of a cyclic Latin square over A LH L L0 S (every mode in every
 * position once per 5 rounds). With four modes this was a Williams square (each mode also
 * directly following each other once); the default-base mode LH made it five.
 */
const CYCLE: ModeId[] = ["A", "LH", "S", "L", "L0"];
const SQUARE: ModeId[][] = CYCLE.map((_, r) => CYCLE.map((_, i) => CYCLE[(r + i) % CYCLE.length]!));
const orderFor = (r: number) => SQUARE[r % SQUARE.length]!.map((id) => MODES.find((m) => m.id === id)!);

// ---------------------------------------------------------------------------------------------
// Servers (bench/support/server.ts: each in a cgroup of its own, whose CPU counter covers the
// server and its wrapper, exited backends included)

interface Server extends BenchServer {
  mode: ModeId;
  /** The learned file and learn's violation log (LH, L, L0). */
  learned?: string;
  violations?: string;
}

function specFor(mode: ModeId, work: string): { spec: ServerSpec; learned?: string; violations?: string } {
  const label = `mode ${mode}`;
  if (mode === "A") return { spec: { label } };
  if (mode === "S") {
    return { spec: { label, wrap: (pg, c) => ["strace", "-f", "-qq", "-o", "/dev/null", "-u", c.user.name, "--", ...pg], signalPostmaster: true } };
  }
  const learned = join(work, `learned-${mode}.conf`);
  const base = mode === "L0" ? ["--base", "none"] : mode === "L" ? ["--base", "starter"] : [];
  // No workload here (pgbench runs from outside): the server's own timers, no crash round; so
  // learn says its run was not complete and exits 2, after writing its file.
  const violations = join(work, `violations-${mode}.jsonl`);
  const argv = [process.execPath, CLI, "learn", "-o", learned, ...base, "--no-timers", "--no-crash-round", "--log", violations, "--"];
  return { spec: { label, wrap: (pg) => [...argv, ...pg], okCodes: [0, 2], readyTimeoutMs: 180_000 }, learned, violations };
}

async function startServer(cluster: Cluster, mode: ModeId, work: string): Promise<Server> {
  const { spec, learned, violations } = specFor(mode, work);
  for (const p of [learned, violations, violations && `${violations}.1`]) if (p) rmSync(p, { force: true });
  const s = await startBenchServer(cluster, spec);
  const pm = s.postmaster;
  // Not timings: a mode without its filter or tracer would measure nothing.
  const status = readFileSync(`/proc/${pm}/status`, "utf8");
  const field = (n: string) => new RegExp(`^${n}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim();
  const want = { A: ["0", "0"], LH: ["2", "0"], L: ["2", "0"], L0: ["2", "0"], S: ["0", "tracer"] }[mode];
  const traced = field("TracerPid") !== "0" ? "tracer" : "0";
  if (field("Seccomp") !== want[0] || traced !== want[1]) {
    await stopBenchServer(s, true);
    throw new Error(`mode ${mode}: postmaster ${pm} has Seccomp ${field("Seccomp")}, TracerPid ${field("TracerPid")}`);
  }
  return Object.assign(s, { mode, ...(learned ? { learned, violations } : {}) });
}

interface Recorded {
  calls: number;
  distinct: number;
  contexts: number;
  /** Calls in learn's violation log per syscall (every call that went to the supervisor). */
  bySyscall: Map<string, number>;
}

/** Lines of a violation log (and its rotated generation) per syscall. */
function countBySyscall(logPath: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const p of [`${logPath}.1`, logPath]) {
    if (!existsSync(p)) continue;
    for (const line of readFileSync(p, "utf8").split("\n")) {
      if (!line) continue;
      try {
        const name = (JSON.parse(line) as { syscall?: string }).syscall ?? "?";
        counts.set(name, (counts.get(name) ?? 0) + 1);
      } catch {
        /* a line cut by a rotation */
      }
    }
  }
  return counts;
}

/** Stops the server (SIGINT: fast shutdown); for learn, what its "recorded ..." line says. */
async function stopServer(s: Server): Promise<Recorded | undefined> {
  await stopBenchServer(s, false, 180_000);
  if (!s.learned) return undefined;
  if (!existsSync(s.learned) || statSync(s.learned).mtimeMs < s.startedAt.getTime()) {
    throw new Error(`mode ${s.mode}: learn did not write ${s.learned}\n--- output ---\n${s.output()}`);
  }
  const m = /recorded (\d+) calls? of (\d+) distinct syscalls? in (\d+) contexts?/.exec(s.output());
  if (!m) throw new Error(`mode ${s.mode}: no "recorded ..." line in learn's output\n${s.output()}`);
  return { calls: Number(m[1]), distinct: Number(m[2]), contexts: Number(m[3]), bySyscall: countBySyscall(s.violations!) };
}

// ---------------------------------------------------------------------------------------------
// CPU: the server's whole tree from its cgroup; the wrapper alone (learn's node process with its
// supervisor thread, or strace; not its children, which are the server) from /proc/PID/stat.

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

/** utime + stime of one process, clock ticks. */
function ticks(pid: number): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" "); // rest[11], rest[12]: utime stime
  return Number(rest[11] ?? 0) + Number(rest[12] ?? 0);
}

/**
 * Waits up to 3 s until the postmaster has at most `max` children (the last run's backends have
 * exited; Infinity: no wait), then 50 ms; returns how many it has.
 */
async function settled(s: Server, max: number): Promise<number> {
  const deadline = Date.now() + 3000;
  while (childrenOf(s.postmaster).length > max && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
  return childrenOf(s.postmaster).length;
}

/** Server tree (cgroup) and wrapper CPU so far, µs. */
function cpuUs(s: Server): { total: number; wrapper: number } {
  return { total: serverCpuUs(s), wrapper: s.mode === "A" ? 0 : (ticks(s.spawnedPid) / CLK_TCK) * 1e6 };
}

// ---------------------------------------------------------------------------------------------
// pgbench, statistics, formatting

function runPgbench(cluster: Cluster, args: string[], what: string): { tps: number; transactions: number } {
  const r = pgbench(cluster, args, { timeoutMs: (SECONDS + 180) * 1000 });
  if (!r.ok) throw new Error(`pgbench ${args.join(" ")} (${what}) failed:\n${r.stderr}\n${r.stdout}`);
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  // No transaction at all (--base none on a loaded machine can do that in a short run): 0 TPS, not a failure.
  if (tx && Number(tx[1]) === 0) return { tps: 0, transactions: 0 };
  if (!tps || !tx) throw new Error(`pgbench (${what}): no tps/transactions in\n${r.stdout}`);
  return { tps: Number(tps[1]), transactions: Number(tx[1]) };
}

/** A markdown table; the first `left` columns are left-aligned, the rest right-aligned. */
const mdLeft = (header: string[], rows: string[][], left = 1) => mdTable(header, rows, header.map((_, i) => i >= left));
const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "?";

// ---------------------------------------------------------------------------------------------
// Main

interface Sample {
  round: number;
  mode: ModeId;
  workload: string;
  tps: number;
  /** Server + wrapper CPU per transaction, µs; and the wrapper's share of it. */
  cpuUs: number;
  wrapperUs: number;
  load: number;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run as root (the server runs as the postgres user; learn and strace need root)");
  for (const p of [SETPRIV, CLI]) if (!existsSync(p)) throw new Error(`${p} is missing`);
  if (spawnSync("strace", ["-V"]).status !== 0) throw new Error("strace is not installed");
  const machine = { ...machineInfo(), strace: sh("strace", ["-V"]).split("\n")[0]! };
  const command = [QUICK ? "BENCH_QUICK=1" : "", ...["SECONDS", "ROUNDS", "WARMUP", "SCALE"].map((k) => `BENCH_LEARN_${k}`).filter((k) => process.env[k]).map((k) => `${k}=${process.env[k]}`), "npm run bench:learn"].filter(Boolean).join(" ");
  const uptime0 = sh("uptime", []);
  log(`# learn vs strace${QUICK ? " (QUICK)" : ""}: ${machine.nproc} CPUs, "${machine.cpu}", kernel ${machine.kernel}, ${machine.postgres}, ${machine.strace}`);
  log(`settings: scale ${SCALE}, -c ${CLIENTS} -j ${JOBS} -T ${SECONDS}, ${ROUNDS} rounds, ${WARMUP} s warm-up per start`);
  log(`uptime at start: ${uptime0}`);

  const work = mkdtempSync(join(tmpdir(), "pg_seccomp-learn-bench-"));
  const cluster = await createCluster();
  log(`cluster: ${cluster.dataDir} (port ${cluster.port}); learn output and logs in ${work}`);
  const samples: Sample[] = [];
  const recorded = new Map<ModeId, Recorded[]>();
  const t0 = Date.now();
  try {
    {
      const s = await startServer(cluster, "A", work);
      const r = pgbench(cluster, ["-i", "-q", "-s", String(SCALE)], { timeoutMs: 900_000 });
      if (!r.ok) throw new Error(`pgbench -i failed:\n${r.stderr}`);
      query(cluster, "VACUUM ANALYZE");
      log(`pgbench -i -s ${SCALE}: database ${query(cluster, "SELECT pg_size_pretty(pg_database_size('postgres'))")}`);
      await stopServer(s);
    }
    for (let round = 0; round < ROUNDS; round++) {
      const order = orderFor(round);
      log(`\n## round ${round + 1}/${ROUNDS}: ${order.map((m) => m.id).join(" ")}`);
      for (const w of WORKLOADS) {
        for (const { id: mode } of order) {
          const s = await startServer(cluster, mode, work);
          if (WARMUP > 0) {
            // Unmeasured: under --base none a short warm-up may complete no transaction at all.
            const r = pgbench(cluster, ["-S", "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(WARMUP)], { timeoutMs: (WARMUP + 180) * 1000 });
            if (!r.ok) throw new Error(`pgbench warm-up (${mode}) failed:\n${r.stderr}\n${r.stdout}`);
          }
          const auxiliary = await settled(s, Infinity);
          const c0 = cpuUs(s);
          const load = loadavg()[0]!;
          const r = runPgbench(cluster, [...w.args, "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(SECONDS)], `${mode} ${w.id}`);
          // The cgroup charges a backend as it runs; its exit is counted once it has exited.
          await settled(s, auxiliary);
          const c1 = cpuUs(s);
          const us = (t: number) => (r.transactions > 0 ? t / r.transactions : NaN);
          const rec = await stopServer(s);
          if (rec) recorded.set(mode, [...(recorded.get(mode) ?? []), rec]);
          const sample = { round, mode, workload: w.id, tps: r.tps, load, cpuUs: us(c1.total - c0.total), wrapperUs: us(c1.wrapper - c0.wrapper) };
          samples.push(sample);
          log(
            `  ${w.id.padEnd(6)} ${mode.padEnd(2)} ${r.tps.toFixed(0).padStart(6)} TPS  ${sample.cpuUs.toFixed(1).padStart(7)} µs CPU/tx` +
              ` (wrapper ${sample.wrapperUs.toFixed(1)})  load ${load.toFixed(2)}${rec ? `  learn recorded ${rec.calls} events (${rec.distinct} syscalls, ${rec.contexts} contexts)` : ""}`,
          );
        }
      }
    }
  } finally {
    const c = currentServer();
    if (c) await stopBenchServer(c, true, 180_000).catch(() => undefined);
    destroyCluster(cluster);
    rmSync(work, { recursive: true, force: true });
  }
  const elapsed = (Date.now() - t0) / 1000;
  const uptime1 = sh("uptime", []);

  // --- Report -------------------------------------------------------------------------------
  const get = (r: number, m: ModeId, w: string) => samples.find((x) => x.round === r && x.mode === m && x.workload === w);
  const ratios = (m: ModeId, w: string, f: (x: Sample) => number) =>
    Array.from({ length: ROUNDS }, (_, r) => [get(r, m, w), get(r, "A", w)] as const).filter(([x, a]) => x && a).map(([x, a]) => f(x!) / f(a!));
  const f3 = (x: number) => x.toFixed(3).replace(/^-/, "−");
  const cell = (xs: number[]) => `${f3(median(xs))} (${f3(Math.min(...xs))}–${f3(Math.max(...xs))})`;
  const med = (m: ModeId, w: string, f: (x: Sample) => number) => median(samples.filter((x) => x.mode === m && x.workload === w).map(f));
  const notes: string[] = [];
  /** (1 − L/A) / (1 − S/A) from the median ratios, with the per-round range; costs: 1 − ratio for TPS, ratio − 1 for CPU. */
  const fraction = (w: { id: string; label: string }, f: (x: Sample) => number, cost: (ratio: number) => number, what: string) => {
    const l = ratios("LH", w.id, f);
    const s = ratios("S", w.id, f);
    const per = l.map((x, i) => cost(x) / cost(s[i]!));
    const txt = `${f3(cost(median(l)) / cost(median(s)))} (${f3(Math.min(...per))}–${f3(Math.max(...per))})`;
    if (l.length < 2) {
      notes.push(`${w.label}, ${what}: one round only, so there is no spread to judge the noise by.`);
      return `${txt} *`;
    }
    if (Math.min(...l) <= 1 && Math.max(...l) >= 1) {
      notes.push(`${w.label}, ${what}: LH ÷ A ranges ${f3(Math.min(...l))}–${f3(Math.max(...l))} over the rounds, which includes 1: learn's cost is within the noise, and the fraction is not distinguishable from 0.`);
      return `${txt} *`;
    }
    return txt;
  };
  const table = (unit: string, f: (x: Sample) => number, fmt: (x: number) => string, cost: (r: number) => number, what: string) =>
    mdLeft(
      ["workload", ...MODES.map((m) => `${m.id} ${unit}`), "LH ÷ A", "L ÷ A", "L0 ÷ A", "S ÷ A", "learn (LH) cost ÷ strace cost"],
      WORKLOADS.map((w) => [
        w.label,
        ...MODES.map((m) => fmt(med(m.id, w.id, f))),
        ...(["LH", "L", "L0", "S"] as const).map((m) => cell(ratios(m, w.id, f))),
        fraction(w, f, cost, what),
      ]),
    );
  const tpsTable = table("TPS", (x) => x.tps, (x) => x.toFixed(0), (r) => 1 - r, "TPS");
  const cpuTable = table("µs/tx", (x) => x.cpuUs, (x) => x.toFixed(1), (r) => r - 1, "CPU/tx");
  const wrapperRow = mdLeft(
    ["workload", ...MODES.filter((m) => m.id !== "A").map((m) => `${m.id} wrapper µs/tx`)],
    WORKLOADS.map((w) => [w.label, ...MODES.filter((m) => m.id !== "A").map((m) => med(m.id, w.id, (x) => x.wrapperUs).toFixed(1))]),
  );
  const perRound = mdLeft(
    ["round", "order", "load", ...WORKLOADS.flatMap((w) => MODES.map((m) => `${w.id} ${m.id}`))],
    Array.from({ length: ROUNDS }, (_, r) => {
      const l = samples.filter((x) => x.round === r).map((x) => x.load);
      return [String(r + 1), orderFor(r).map((m) => m.id).join(" "), `${Math.min(...l).toFixed(1)}–${Math.max(...l).toFixed(1)}`,
        ...WORKLOADS.flatMap((w) => MODES.map((m) => get(r, m.id, w.id)?.tps.toFixed(0) ?? "-"))];
    }),
    2,
  );
  const recordedLine = (m: ModeId) => {
    const rs = recorded.get(m) ?? [];
    if (!rs.length) return `- ${m}: no runs`;
    const range = (xs: number[]) => (Math.min(...xs) === Math.max(...xs) ? String(xs[0]) : `${Math.min(...xs)}–${Math.max(...xs)}`);
    const total = new Map<string, number>();
    for (const r of rs) for (const [n, c] of r.bySyscall) total.set(n, (total.get(n) ?? 0) + c);
    const logged = [...total.values()].reduce((a, b) => a + b, 0);
    const top = [...total].sort((a, b) => b[1] - a[1]).slice(0, 12).map(([n, c]) => `${n} ${((100 * c) / logged).toFixed(1)}%`).join(", ");
    // learn counts the events its supervisor reports, which are rate-limited like the log: under
    // load a lower bound on the calls that reached it, not their number.
    return `- ${m}: ${range(rs.map((r) => r.calls))} events per run (${rs.length} runs; rate-limited: a lower bound on the calls that reached the supervisor), ${range(rs.map((r) => r.distinct))} distinct syscalls in ${range(rs.map((r) => r.contexts))} contexts` +
      (logged ? `; most frequent in its violation log (${logged} lines over all runs; the log is rate-limited, so under load a sample): ${top}` : "");
  };
  const report = [
    `Machine: ${machine.nproc} CPUs (\`nproc\`), "${machine.cpu}", kernel ${machine.kernel}, ${machine.postgres}, ${machine.strace}, Node ${process.version}.`,
    `\`uptime\` at start: \`${uptime0}\`; at end: \`${uptime1}\`.`,
    "",
    `Command: \`${command}\` (scale ${SCALE}, \`-c ${CLIENTS} -j ${JOBS} -T ${SECONDS}\`, ${ROUNDS} rounds, ${WARMUP} s warm-up after each start; ${elapsed.toFixed(0)} s after \`pgbench -i\`).`,
    "",
    "TPS: median over rounds. Ratios: median of the per-round ratios to A, min–max in parentheses. Learn cost ÷ strace cost:",
    "(1 − LH÷A) ÷ (1 − S÷A) from the median ratios, per-round values in parentheses; * marks LH ÷ A within noise of 1 (its per-round range includes 1).",
    "",
    tpsTable,
    "",
    "CPU time per transaction of the server and its wrapper (learn's node process with the supervisor thread, or strace),",
    "ratios as above; cost fraction (LH÷A − 1) ÷ (S÷A − 1):",
    "",
    cpuTable,
    "",
    "Of which the wrapper (median µs/tx):",
    "",
    wrapperRow,
    ...(notes.length ? ["", ...notes.map((n) => `\\* ${n}`)] : []),
    "",
    "Per round (TPS; load: 1-minute load average before each measured run, min–max over the round):",
    "",
    perRound,
    "",
    "What learn recorded (what went to the supervisor during the whole run, warm-up included):",
    "",
    ...(["LH", "L", "L0"] as const).map(recordedLine),
    "",
  ].join("\n");
  log("\n" + report);
  if (OUT) writeFileSync(OUT, report);
}

process.on("SIGINT", () => {
  const c = currentServer();
  if (c?.alive()) {
    if (c.spec.signalPostmaster && c.postmaster) process.kill(c.postmaster, "SIGINT");
    else c.proc.kill("SIGINT");
  }
});

main().catch((e: unknown) => {
  process.stderr.write(`learn-bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
