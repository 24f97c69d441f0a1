// PostgreSQL throughput under the filter vs unfiltered, measured with pgbench in the same run.
//
//   npm run bench:pgbench                 (as root: the server runs as the postgres OS user)
//   BENCH_QUICK=1 npm run bench:pgbench   (a smoke run: short runs, two rounds, small scale)
//
// One throwaway cluster (src/postgres/cluster.ts) is initialised once with `pgbench -i -s SCALE`.
// Three modes:
//
//   A  unfiltered: postgres exec'd directly as the postgres user (setpriv --init-groups, so the
//      same uid, gid and groups as under run), with the same arguments and environment;
//   B  `pg_seccomp run -- postgres -D ...`: the starter profile, SSBD mitigation not waived;
//   C  `pg_seccomp run --spec-allow -- postgres -D ...`.
//
// Each round runs every workload under every mode: for each workload, the modes one after the
// other in an order that rotates from round to round (A B C, C A B, B C A, ...), so that the
// runs a ratio compares are adjacent in time and slow drift of the machine cancels out. For
// every run the server is started afresh (the data stays), gets a short unmeasured select-only
// warm-up, runs the workload for BENCH_PGBENCH_SECONDS, and is stopped (SIGINT: fast shutdown).
// Workloads, all `-c CLIENTS -j JOBS`: select-only (-S), TPC-B-like (the default script) and
// select-only with a new connection per transaction (-S -C).
//
// Reported per workload: the median TPS of each mode over the rounds, and the ratio of each
// filtered mode to the unfiltered one, as the median of per-round ratios with their min–max
// (a round's ratio compares that round's runs of the two modes for that workload). The same
// for the server's CPU time per transaction (user + system of every process the server's command
// started, the launcher included under run, from a cgroup of its own: bench/support/server.ts
// says why not /proc), which depends less than TPS on how much CPU other work on the machine
// leaves the server. It also reads, for every server it starts, /proc/<postmaster>/status
// (Seccomp, Seccomp_filters, NoNewPrivs, Speculation_Store_Bypass, SpeculationIndirectBranch)
// and one child's, and counts the calls the launcher's supervisor handled, from the run's violation log (the file its run-state record in
// /run/pg_seccomp names; only events logged after that server was started count).
//
// This is a benchmark: it never asserts timings. It fails only if something does not work
// (a server that does not start, pgbench that fails, a filter missing where there should be one).
//
// Environment (defaults in parentheses; BENCH_QUICK=1 changes the defaults to the second value):
//   BENCH_PGBENCH_SECONDS   -T of each measured run           (10 / 3)
//   BENCH_PGBENCH_ROUNDS    rounds                            (5 / 2)
//   BENCH_PGBENCH_WARMUP    seconds of unmeasured -S warm-up after each start (2 / 1)
//   BENCH_PGBENCH_SCALE     pgbench -i -s                     (10 / 2)
//   BENCH_PGBENCH_CLIENTS   -c                                (4)
//   BENCH_PGBENCH_JOBS      -j                                (2)
//   BENCH_PGBENCH_OUT       also write the markdown report to this file
//   BENCH_PGBENCH_KEEP=1    keep the cluster's directory (its path is printed)

import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { loadavg } from "node:os";
import { join } from "node:path";

import { createCluster, destroyCluster, pgbench, query, type Cluster } from "../src/postgres/cluster.js";
import { runStateDir } from "../src/host/run-state.js";
import { log, machine, mdTable, median, nonNegativeInt, positiveInt } from "./support/report.js";
import { childrenOf, CLI, currentServer, serverCpuUs, SETPRIV, startServer as startBenchServer, stopServer, type BenchServer } from "./support/server.js";

const QUICK = process.env.BENCH_QUICK === "1";
const SECONDS = positiveInt(process.env.BENCH_PGBENCH_SECONDS, QUICK ? 3 : 10);
const ROUNDS = positiveInt(process.env.BENCH_PGBENCH_ROUNDS, QUICK ? 2 : 5);
const WARMUP = nonNegativeInt(process.env.BENCH_PGBENCH_WARMUP, QUICK ? 1 : 2);
const SCALE = positiveInt(process.env.BENCH_PGBENCH_SCALE, QUICK ? 2 : 10);
const CLIENTS = positiveInt(process.env.BENCH_PGBENCH_CLIENTS, 4);
const JOBS = positiveInt(process.env.BENCH_PGBENCH_JOBS, 2);
const OUT = process.env.BENCH_PGBENCH_OUT;
const KEEP = process.env.BENCH_PGBENCH_KEEP === "1";

// ---------------------------------------------------------------------------------------------
// Modes and workloads

type ModeId = "A" | "B" | "C";

interface Mode {
  id: ModeId;
  label: string;
  /** Arguments of `pg_seccomp run` before `--`; undefined: start postgres directly. */
  runArgs?: string[];
}

const MODES: Mode[] = [
  { id: "A", label: "unfiltered" },
  { id: "B", label: "pg_seccomp run (starter profile)", runArgs: [] },
  { id: "C", label: "pg_seccomp run --spec-allow", runArgs: ["--spec-allow"] },
];

interface Workload {
  id: string;
  label: string;
  args: string[];
}

const WORKLOADS: Workload[] = [
  { id: "select", label: "select-only (`-S`)", args: ["-S"] },
  { id: "tpcb", label: "TPC-B-like (default)", args: [] },
  { id: "connect", label: "select-only, connect per transaction (`-S -C`)", args: ["-S", "-C"] },
];

function pgbenchArgs(w: Workload, seconds: number): string[] {
  return [...w.args, "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(seconds)];
}

/** Rotation r of the modes: A B C, C A B, B C A, A B C, ... */
function orderFor(round: number): Mode[] {
  const k = round % MODES.length;
  return [...MODES.slice(MODES.length - k), ...MODES.slice(0, MODES.length - k)];
}

// ---------------------------------------------------------------------------------------------
// Starting and stopping the server

interface Server extends BenchServer {
  mode: Mode;
}

async function startServer(cluster: Cluster, mode: Mode): Promise<Server> {
  const s = await startBenchServer(cluster, { label: `mode ${mode.id} (${mode.label})`, ...(mode.runArgs ? { runArgs: mode.runArgs } : {}) });
  return { ...s, mode };
}

// ---------------------------------------------------------------------------------------------
// What the kernel says about the server

interface ProcView {
  seccomp: string;
  filters: string;
  noNewPrivs: string;
  ssb: string;
  indirectBranch: string;
}

function procView(pid: number): ProcView | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, "utf8");
  } catch {
    return undefined;
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "(absent)";
  return {
    seccomp: field("Seccomp"),
    filters: field("Seccomp_filters"),
    noNewPrivs: field("NoNewPrivs"),
    ssb: field("Speculation_Store_Bypass"),
    indirectBranch: field("SpeculationIndirectBranch"),
  };
}

/** One child of the postmaster (checkpointer, walwriter, ...), to see that children match. */
function firstChild(pid: number): number | undefined {
  return childrenOf(pid)[0];
}

function describeView(v: ProcView | undefined): string {
  if (!v) return "(gone)";
  return (
    `Seccomp ${v.seccomp}, filters ${v.filters}, NoNewPrivs ${v.noNewPrivs}, ` +
    `Speculation_Store_Bypass "${v.ssb}", SpeculationIndirectBranch "${v.indirectBranch}"`
  );
}

interface SupervisedCalls {
  count: number;
  /** syscall (action) -> count */
  byCall: Map<string, number>;
  logPath: string;
}

/** Events the launcher logged for this server, in the log its run-state record names. */
function supervisedCalls(s: Server, logPath: string): SupervisedCalls {
  const byCall = new Map<string, number>();
  let count = 0;
  let text = "";
  try {
    text = readFileSync(logPath, "utf8");
  } catch {
    /* no file: nothing was logged */
  }
  for (const line of text.split("\n")) {
    if (!line.trim()) continue;
    let e: { time?: string; pid?: number; syscall?: string; action?: string };
    try {
      e = JSON.parse(line) as typeof e;
    } catch {
      continue;
    }
    // The file may hold earlier servers' lines (it is per data directory, or per reused pid).
    if (!e.time || new Date(e.time).getTime() < s.startedAt.getTime()) continue;
    count++;
    const key = `${e.syscall ?? "?"} (${e.action ?? "?"})`;
    byCall.set(key, (byCall.get(key) ?? 0) + 1);
  }
  return { count, byCall, logPath };
}

function logPathOf(pm: number): string {
  const dir = runStateDir();
  try {
    const state = JSON.parse(readFileSync(join(dir, `${pm}.json`), "utf8")) as { logPath?: string };
    if (state.logPath) return state.logPath;
  } catch {
    /* fall back to the default */
  }
  return join(dir, `${pm}.jsonl`);
}

/** Waits (up to 3 s) until the backends of the last pgbench run have exited, so that their CPU is in. */
async function settled(pm: number, auxiliary: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (childrenOf(pm).length > auxiliary && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
}

// ---------------------------------------------------------------------------------------------
// pgbench

interface RunResult {
  tps: number;
  transactions: number;
  failed: number;
}

function runPgbench(cluster: Cluster, args: string[], what: string): RunResult {
  const r = pgbench(cluster, args, { timeoutMs: (SECONDS + 120) * 1000 });
  if (!r.ok) throw new Error(`pgbench ${args.join(" ")} (${what}) failed:\n${r.stderr}\n${r.stdout}`);
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  if (!tps) throw new Error(`pgbench ${args.join(" ")} (${what}): no "tps =" line in\n${r.stdout}`);
  const tx = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  const failed = /number of failed transactions: (\d+)/.exec(r.stdout);
  return { tps: Number(tps[1]), transactions: tx ? Number(tx[1]) : NaN, failed: failed ? Number(failed[1]) : 0 };
}

// ---------------------------------------------------------------------------------------------
// Statistics and formatting

const fmtTps = (x: number) => x.toFixed(0);
const fmtRatio = (x: number) => x.toFixed(3);

// ---------------------------------------------------------------------------------------------
// Main

interface Sample {
  round: number;
  mode: ModeId;
  workload: string;
  tps: number;
  failed: number;
  /** 1-minute load average just before the measured run. */
  load: number;
  /** Server CPU time (all its processes, user + system) per transaction, µs. */
  cpuUs: number;
}

interface ServerReport {
  round: number;
  mode: ModeId;
  postmaster: string;
  child: string;
  supervised: SupervisedCalls | undefined;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error("run this benchmark as root (the server runs as the postgres OS user, and `pg_seccomp run` loads real filters)");
  }
  if (!existsSync(SETPRIV)) throw new Error(`${SETPRIV} is missing (util-linux); it starts the unfiltered server`);
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; build first (npm run bench:pgbench does)`);
  const m = machine();
  const command = [
    QUICK ? "BENCH_QUICK=1" : "",
    ...["SECONDS", "ROUNDS", "WARMUP", "SCALE", "CLIENTS", "JOBS"]
      .map((k) => `BENCH_PGBENCH_${k}`)
      .filter((k) => process.env[k])
      .map((k) => `${k}=${process.env[k]}`),
    "npm run bench:pgbench",
  ]
    .filter(Boolean)
    .join(" ");
  const load0 = loadavg();
  log(`# pgbench: PostgreSQL under the filter vs unfiltered${QUICK ? " (QUICK)" : ""}`);
  log(`machine: ${m.nproc} CPUs, "${m.cpu}", kernel ${m.kernel}, ${m.postgres}, Node ${m.node}`);
  log(`spec_store_bypass (sysfs): ${m.ssb}`);
  log(`settings: scale ${SCALE}, -c ${CLIENTS} -j ${JOBS} -T ${SECONDS}, ${ROUNDS} rounds, ${WARMUP} s warm-up per start`);
  log(`load average at start: ${load0.map((x) => x.toFixed(2)).join(" ")}`);

  const cluster = await createCluster();
  log(`cluster: ${cluster.dataDir} (port ${cluster.port})`);
  const samples: Sample[] = [];
  const servers: ServerReport[] = [];
  const t0 = Date.now();
  try {
    // Initialise once, on an unfiltered server.
    {
      const s = await startServer(cluster, MODES[0]!);
      const ti = Date.now();
      const r = pgbench(cluster, ["-i", "-q", "-s", String(SCALE)], { timeoutMs: 900_000 });
      if (!r.ok) throw new Error(`pgbench -i failed:\n${r.stderr}`);
      query(cluster, "VACUUM ANALYZE");
      const size = query(cluster, "SELECT pg_size_pretty(pg_database_size('postgres'))");
      const sb = query(cluster, "SHOW shared_buffers");
      log(`pgbench -i -s ${SCALE}: ${((Date.now() - ti) / 1000).toFixed(1)} s; database ${size}, shared_buffers ${sb}`);
      await stopServer(s);
    }

    const seen = new Map<ModeId, string>();
    for (let round = 0; round < ROUNDS; round++) {
      const order = orderFor(round);
      log(`\n## round ${round + 1}/${ROUNDS}: ${order.map((x) => x.id).join(" ")}`);
      for (const w of WORKLOADS) {
        for (const mode of order) {
          const s = await startServer(cluster, mode);
          const pmView = procView(s.postmaster);
          const child = firstChild(s.postmaster);
          const childView = child !== undefined ? procView(child) : undefined;
          const auxiliary = childrenOf(s.postmaster).length;
          const filtered = mode.runArgs !== undefined;
          // Not a timing assertion: a filtered mode without a filter would measure nothing.
          if (filtered && pmView?.seccomp !== "2") throw new Error(`mode ${mode.id}: the postmaster has no seccomp filter: ${describeView(pmView)}`);
          if (!filtered && pmView?.seccomp !== "0") throw new Error(`mode ${mode.id}: the unfiltered postmaster has a filter: ${describeView(pmView)}`);
          if (WARMUP > 0) runPgbench(cluster, ["-S", "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(WARMUP)], "warm-up");
          await settled(s.postmaster, auxiliary);
          const cpu0 = serverCpuUs(s);
          const load = loadavg()[0]!;
          const r = runPgbench(cluster, pgbenchArgs(w, SECONDS), `${mode.id} ${w.id}`);
          await settled(s.postmaster, auxiliary);
          const cpuUs = (serverCpuUs(s) - cpu0) / r.transactions;
          samples.push({ round, mode: mode.id, workload: w.id, tps: r.tps, failed: r.failed, load, cpuUs });
          const logPath = filtered ? logPathOf(s.postmaster) : "";
          await stopServer(s);
          const supervised = filtered ? supervisedCalls(s, logPath) : undefined;
          servers.push({ round, mode: mode.id, postmaster: describeView(pmView), child: describeView(childView), supervised });
          log(
            `  ${w.id.padEnd(7)} ${mode.id} ${mode.label.padEnd(33)} ${fmtTps(r.tps).padStart(6)} TPS  ${cpuUs.toFixed(1).padStart(6)} µs CPU/tx` +
              `${r.failed ? ` (${r.failed} failed)` : ""}  load ${load.toFixed(2)}  pid ${s.postmaster}` +
              (supervised ? `  supervised calls ${supervised.count}` : ""),
          );
          const view =
            `postmaster: ${describeView(pmView)}; child ${child ?? "-"}: ${describeView(childView)}` +
            (supervised ? `; violation log ${supervised.logPath}` : "");
          if (seen.get(mode.id) !== view.replace(/child \d+/, "child")) {
            seen.set(mode.id, view.replace(/child \d+/, "child"));
            log(`      ${view}`);
          }
        }
      }
    }
  } finally {
    const c = currentServer();
    if (c) {
      await stopServer(c).catch(() => undefined);
    }
    if (KEEP) log(`kept ${cluster.root}`);
    else destroyCluster(cluster);
  }
  const elapsed = (Date.now() - t0) / 1000;
  const load1 = loadavg();

  // --- Report -------------------------------------------------------------------------------
  const of = (mode: ModeId, wl: string) => samples.filter((x) => x.mode === mode && x.workload === wl);
  /** Per-round ratios of mode to A for one metric. */
  const ratios = (mode: ModeId, wl: string, metric: (x: Sample) => number) => {
    const out: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = samples.find((x) => x.round === r && x.mode === "A" && x.workload === wl);
      const b = samples.find((x) => x.round === r && x.mode === mode && x.workload === wl);
      if (a && b) out.push(metric(b) / metric(a));
    }
    return out;
  };
  const ratioCell = (xs: number[]) =>
    `${fmtRatio(median(xs))} (${fmtRatio(Math.min(...xs))}–${fmtRatio(Math.max(...xs))})`;
  const metricTable = (unit: string, metric: (x: Sample) => number, fmt: (x: number) => string) =>
    mdTable(
      ["workload", `A unfiltered ${unit}`, `B filter ${unit}`, "B ÷ A (min–max)", `C --spec-allow ${unit}`, "C ÷ A (min–max)"],
      WORKLOADS.map((w) => [
        w.label,
        fmt(median(of("A", w.id).map(metric))),
        fmt(median(of("B", w.id).map(metric))),
        ratioCell(ratios("B", w.id, metric)),
        fmt(median(of("C", w.id).map(metric))),
        ratioCell(ratios("C", w.id, metric)),
      ]),
      [false, true, true, true, true, true],
    );
  const summary = metricTable("TPS", (x) => x.tps, fmtTps);
  const cpuSummary = metricTable("µs/tx", (x) => x.cpuUs, (x) => x.toFixed(1));

  const perRound = mdTable(
    ["round", "order", "load", ...WORKLOADS.flatMap((w) => MODES.map((md) => `${w.id} ${md.id}`))],
    Array.from({ length: ROUNDS }, (_, r) => [
      String(r + 1),
      orderFor(r).map((x) => x.id).join(" "),
      (() => {
        const l = samples.filter((x) => x.round === r).map((x) => x.load);
        return l.length ? `${Math.min(...l).toFixed(1)}–${Math.max(...l).toFixed(1)}` : "-";
      })(),
      ...WORKLOADS.flatMap((w) =>
        MODES.map((md) => {
          const x = samples.find((y) => y.round === r && y.mode === md.id && y.workload === w.id);
          return x ? fmtTps(x.tps) : "-";
        }),
      ),
    ]),
    [true, false, true, ...WORKLOADS.flatMap(() => MODES.map(() => true))],
  );

  const statusRows = MODES.map((md) => {
    const views = [...new Set(servers.filter((s) => s.mode === md.id).map((s) => s.postmaster))];
    const kids = [...new Set(servers.filter((s) => s.mode === md.id).map((s) => s.child))];
    const sup = servers.filter((s) => s.mode === md.id && s.supervised);
    const total = sup.reduce((n, s) => n + (s.supervised?.count ?? 0), 0);
    const calls = new Map<string, number>();
    for (const s of sup) for (const [k, n] of s.supervised!.byCall) calls.set(k, (calls.get(k) ?? 0) + n);
    return [
      `${md.id} ${md.label}`,
      views.join("; "),
      kids.join("; "),
      md.runArgs === undefined ? "-" : `${total} in ${sup.length} runs${calls.size ? `: ${[...calls].map(([k, n]) => `${k} ×${n}`).join(", ")}` : ""}`,
    ];
  });
  const status = mdTable(["mode", "postmaster /proc/PID/status", "a child (checkpointer etc.)", "calls the supervisor handled"], statusRows, [false, false, false, false]);
  const failedTotal = samples.reduce((n, s) => n + s.failed, 0);

  const report = [
    `Machine: ${m.nproc} CPUs (\`nproc\`), "${m.cpu}", kernel ${m.kernel}, ${m.postgres}, Node ${m.node};`,
    `/sys/devices/system/cpu/vulnerabilities/spec_store_bypass: "${m.ssb}".`,
    `Load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(2)).join("/")}, at end ${load1.map((x) => x.toFixed(2)).join("/")}.`,
    "",
    `Command: \`${command}\` (scale ${SCALE}, \`-c ${CLIENTS} -j ${JOBS} -T ${SECONDS}\`, ${ROUNDS} rounds, ${WARMUP} s warm-up after each start; ${elapsed.toFixed(0)} s after initdb).`,
    "",
    "TPS: median over rounds. Ratio: median of the per-round ratios (filtered ÷ unfiltered), min–max in parentheses.",
    "",
    summary,
    "",
    "Server CPU time per transaction (user + system time of every process of the server, the launcher included",
    "under run, from the cgroup it ran in, over the measured run, divided by the transactions pgbench counted); ratio as above,",
    "so above 1 means the filtered server spends more CPU per transaction:",
    "",
    cpuSummary,
    "",
    "Per round (TPS; load: the 1-minute load average before each measured run, min–max over the round):",
    "",
    perRound,
    "",
    "What the kernel showed for each mode, and the calls the supervisor handled:",
    "",
    status,
    ...(failedTotal ? ["", `pgbench reported ${failedTotal} failed transactions in total.`] : []),
    "",
  ].join("\n");
  log("\n" + report);
  if (OUT) {
    writeFileSync(OUT, report);
    log(`written to ${OUT}`);
  }
}

// Ctrl-C: stop the server we started and remove the cluster (main's finally does the work).
process.on("SIGINT", () => {
  const c = currentServer();
  if (c?.alive()) c.proc.kill("SIGINT");
});

main().catch((e: unknown) => {
  process.stderr.write(`pgbench-bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
