// What learning costs: pgbench against the same server unfiltered, under `pg_seccomp learn`
// (its default base: the floor plus the hot-path calls; the starter profile as base; --base
// none) and under `strace -f`, in the same run.
//
//   npm run bench:learn                 (as root: the server runs as the postgres OS user)
//   BENCH_QUICK=1 npm run bench:learn   (a smoke run: scale 2, -T 3, one round)
//
// pgbench-bench.ts exports nothing (importing it would run it), so this file is self-contained
// and uses the same building blocks (src/postgres/cluster.ts). One cluster, `pgbench -i -s SCALE`
// once. Modes, all running `postgres -D DATA` as the postgres user with the same environment:
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
// balanced Latin square (A L S L0, L L0 A S, L0 S L A, S A L0 L), so every mode runs in every
// position once per 4 rounds and each mode directly follows each other mode once. (A plain
// rotation, A L L0 S, S A L L0, ..., keeps L right after A in 3 rounds of 4; a first run with
// it showed TPC-B-like L ÷ A of 1.03–1.27, most likely drift between adjacent runs.) Each run
// starts the server afresh, waits for pg_isready, runs an unmeasured select-only warm-up, the measured
// pgbench, and stops the server with SIGINT (for L and L0: SIGINT to `learn`, which forwards it
// and then writes its file; the bench checks the file was written). Reported: median TPS per
// mode, per-round ratios to A (median, min–max), learn's cost as a fraction of strace's,
// (1 − L/A) / (1 − S/A), and the same for CPU time per transaction of the server plus its
// tracer or supervisor (the `learn` or `strace` process: utime + stime from /proc/PID/stat).
// It never asserts a timing; it fails only when something does not work.
//
// Environment (defaults; BENCH_QUICK=1 changes them to the second value):
//   BENCH_LEARN_SECONDS  -T of each measured run  (10 / 3)
//   BENCH_LEARN_ROUNDS   rounds                   (3 / 1)
//   BENCH_LEARN_WARMUP   seconds of -S warm-up after each start (2 / 1)
//   BENCH_LEARN_SCALE    pgbench -i -s            (10 / 2)
//   BENCH_LEARN_OUT      also write the markdown report to this file

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { createCluster, destroyCluster, findPgBinDir, pgbench, postgresArgs, postmasterPid, query, waitReady, type Cluster } from "../src/postgres/cluster.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const CLI = join(ROOT, "dist", "src", "cli", "main.js");
const SETPRIV = "/usr/bin/setpriv";

const QUICK = process.env.BENCH_QUICK === "1";
const int = (name: string, dflt: number, min = 1) => {
  const s = process.env[name];
  const n = s === undefined || s === "" ? NaN : Number(s);
  return Number.isInteger(n) && n >= min ? n : dflt;
};
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
// Servers

interface Server {
  mode: ModeId;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive: () => boolean;
  output: () => string;
  startedAt: number;
  postmaster: number;
  /** The learned file (L, L0). */
  learned?: string;
}

let current: Omit<Server, "postmaster"> & { postmaster?: number } | undefined;

function spawnServer(cluster: Cluster, mode: ModeId, work: string): Omit<Server, "postmaster"> {
  const [postgres, ...args] = postgresArgs(cluster);
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NODE_")));
  const user = cluster.user;
  let cmd: string;
  let argv: string[];
  let learned: string | undefined;
  if (mode === "A") {
    [cmd, argv] = [SETPRIV, [`--reuid=${user.uid}`, `--regid=${user.gid}`, "--init-groups", "--", postgres!, ...args]];
  } else if (mode === "S") {
    [cmd, argv] = ["strace", ["-f", "-qq", "-o", "/dev/null", "-u", user.name, "--", postgres!, ...args]];
  } else {
    learned = join(work, `learned-${mode}.conf`);
    rmSync(learned, { force: true });
    const base = mode === "L0" ? ["--base", "none"] : mode === "L" ? ["--base", "starter"] : [];
    // No workload here (pgbench runs from outside): the server's own timers, no crash round.
    [cmd, argv] = [process.execPath, [CLI, "learn", "-o", learned, ...base, "--no-timers", "--no-crash-round", "--log", join(work, `violations-${mode}.jsonl`), "--", postgres!, ...args]];
  }
  const proc = spawn(cmd, argv, { cwd: cluster.root, env: mode === "A" || mode === "S" ? env : process.env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 262144) out = out.slice(-131072);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on("exit", (code, signal) => {
      done = true;
      res({ code, signal });
    }),
  );
  return { mode, proc, exited, alive: () => !done, output: () => out, startedAt: Date.now(), ...(learned ? { learned } : {}) };
}

async function startServer(cluster: Cluster, mode: ModeId, work: string): Promise<Server> {
  if (existsSync(join(cluster.dataDir, "postmaster.pid"))) throw new Error(`a server still holds ${cluster.dataDir}`);
  const s = spawnServer(cluster, mode, work);
  current = s;
  try {
    await waitReady(cluster, s.alive, 180_000);
  } catch (e) {
    s.proc.kill("SIGKILL");
    throw new Error(`mode ${mode}: ${(e as Error).message}\n--- output ---\n${s.output()}`);
  }
  const pm = postmasterPid(cluster.dataDir);
  if (pm === undefined) throw new Error(`mode ${mode}: no postmaster.pid after the server became ready`);
  current = { ...s, postmaster: pm };
  // Not timings: a mode without its filter or tracer would measure nothing.
  const status = readFileSync(`/proc/${pm}/status`, "utf8");
  const field = (n: string) => new RegExp(`^${n}:\\s*(.*)$`, "m").exec(status)?.[1]?.trim();
  const want = { A: ["0", "0"], LH: ["2", "0"], L: ["2", "0"], L0: ["2", "0"], S: ["0", "tracer"] }[mode];
  const traced = field("TracerPid") !== "0" ? "tracer" : "0";
  if (field("Seccomp") !== want[0] || traced !== want[1]) {
    throw new Error(`mode ${mode}: postmaster ${pm} has Seccomp ${field("Seccomp")}, TracerPid ${field("TracerPid")}`);
  }
  if (mode === "A" && pm !== s.proc.pid) throw new Error(`mode A: postmaster ${pm} is not the spawned postgres ${s.proc.pid}`);
  return { ...s, postmaster: pm };
}

interface Recorded {
  calls: number;
  distinct: number;
  contexts: number;
  /** learn's own CPU (main and supervisor threads) from its start until just before SIGINT, µs. */
  wrapperUs: number;
}

/** Stops the server (SIGINT: fast shutdown); for learn, what its "recorded ..." line says. */
async function stopServer(s: Omit<Server, "postmaster"> & { postmaster?: number }): Promise<Recorded | undefined> {
  const wrapperUs = s.proc.pid !== undefined ? (ticks(s.proc.pid, false) / CLK_TCK) * 1e6 : NaN;
  if (s.alive()) {
    // strace blocks fatal signals with -o FILE, so the postmaster gets SIGINT directly; learn
    // forwards SIGINT to the postmaster and then writes its file.
    if (s.mode === "S" && s.postmaster !== undefined) process.kill(s.postmaster, "SIGINT");
    else s.proc.kill("SIGINT");
  }
  const timer = setTimeout(() => s.proc.kill("SIGKILL"), 180_000);
  const r = await s.exited;
  clearTimeout(timer);
  if (current?.proc === s.proc) current = undefined;
  // learn exits 2 when its run was not complete (no workload: no timer or crash round).
  if (r.code !== 0 && !(s.learned && r.code === 2)) throw new Error(`mode ${s.mode}: exited with ${r.code ?? r.signal}\n--- output ---\n${s.output()}`);
  if (!s.learned) return undefined;
  if (!existsSync(s.learned) || statSync(s.learned).mtimeMs < s.startedAt) {
    throw new Error(`mode ${s.mode}: learn did not write ${s.learned}\n--- output ---\n${s.output()}`);
  }
  const m = /recorded (\d+) calls? of (\d+) distinct syscalls? in (\d+) contexts?/.exec(s.output());
  if (!m) throw new Error(`mode ${s.mode}: no "recorded ..." line in learn's output\n${s.output()}`);
  return { calls: Number(m[1]), distinct: Number(m[2]), contexts: Number(m[3]), wrapperUs };
}

// ---------------------------------------------------------------------------------------------
// CPU time from /proc/PID/stat (clock ticks)

const CLK_TCK = Number(spawnSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).stdout?.trim()) || 100;

function ticks(pid: number, withChildren: boolean): number {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return 0;
  }
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" "); // rest[11..14]: utime stime cutime cstime
  return (withChildren ? [11, 12, 13, 14] : [11, 12]).reduce((n, i) => n + Number(rest[i] ?? 0), 0);
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/**
 * Server (postmaster, reaped children, live children) plus wrapper (learn's node process with
 * its supervisor thread, or strace; not its children, which are the server) CPU ticks. Waits up
 * to 3 s for the last run's backends to be reaped first, so none is counted twice or missed.
 */
async function cpuTicks(s: Server, auxiliary: number): Promise<{ server: number; wrapper: number }> {
  const deadline = Date.now() + 3000;
  while (childrenOf(s.postmaster).length > auxiliary && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 50));
  const server = ticks(s.postmaster, true) + childrenOf(s.postmaster).reduce((n, c) => n + ticks(c, true), 0);
  return { server, wrapper: s.mode === "A" ? 0 : ticks(s.proc.pid!, false) };
}

// ---------------------------------------------------------------------------------------------
// pgbench, statistics, formatting

function runPgbench(cluster: Cluster, args: string[], what: string): { tps: number; transactions: number } {
  const r = pgbench(cluster, args, { timeoutMs: (SECONDS + 180) * 1000 });
  if (!r.ok) throw new Error(`pgbench ${args.join(" ")} (${what}) failed:\n${r.stderr}\n${r.stdout}`);
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  if (!tps || !tx) throw new Error(`pgbench (${what}): no tps/transactions in\n${r.stdout}`);
  return { tps: Number(tps[1]), transactions: Number(tx[1]) };
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** A markdown table; the first `left` columns are left-aligned, the rest right-aligned. */
function mdTable(header: string[], rows: string[][], left = 1): string {
  const w = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => "| " + cells.map((c, i) => (i >= left ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join(" | ") + " |";
  return [line(header), "|" + w.map((n, i) => (i >= left ? "-".repeat(n + 1) + ":" : "-".repeat(n + 2))).join("|") + "|", ...rows.map(line)].join("\n");
}

const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "?";
const log = (s: string) => void process.stdout.write(s + "\n");

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
  const machine = {
    nproc: sh("nproc", []),
    cpu: cpus()[0]?.model ?? "?",
    kernel: sh("uname", ["-r"]),
    postgres: sh(join(findPgBinDir(), "postgres"), ["--version"]),
    strace: sh("strace", ["-V"]).split("\n")[0]!,
  };
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
          if (WARMUP > 0) runPgbench(cluster, ["-S", "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(WARMUP)], "warm-up");
          const auxiliary = childrenOf(s.postmaster).length;
          const c0 = await cpuTicks(s, auxiliary);
          const load = loadavg()[0]!;
          const r = runPgbench(cluster, [...w.args, "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(SECONDS)], `${mode} ${w.id}`);
          const c1 = await cpuTicks(s, auxiliary);
          const us = (t: number) => ((t / CLK_TCK) * 1e6) / r.transactions;
          const rec = await stopServer(s);
          if (rec) recorded.set(mode, [...(recorded.get(mode) ?? []), rec]);
          const sample = { round, mode, workload: w.id, tps: r.tps, load, cpuUs: us(c1.server - c0.server + c1.wrapper - c0.wrapper), wrapperUs: us(c1.wrapper - c0.wrapper) };
          samples.push(sample);
          log(
            `  ${w.id.padEnd(6)} ${mode.padEnd(2)} ${r.tps.toFixed(0).padStart(6)} TPS  ${sample.cpuUs.toFixed(1).padStart(7)} µs CPU/tx` +
              ` (wrapper ${sample.wrapperUs.toFixed(1)})  load ${load.toFixed(2)}${rec ? `  learn recorded ${rec.calls} calls (${rec.distinct} syscalls, ${rec.contexts} contexts)` : ""}`,
          );
        }
      }
    }
  } finally {
    if (current) await stopServer(current).catch(() => undefined);
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
      notes.push(`${w.label}, ${what}: L ÷ A ranges ${f3(Math.min(...l))}–${f3(Math.max(...l))} over the rounds, which includes 1: learn's cost is within the noise, and the fraction is not distinguishable from 0.`);
      return `${txt} *`;
    }
    return txt;
  };
  const table = (unit: string, f: (x: Sample) => number, fmt: (x: number) => string, cost: (r: number) => number, what: string) =>
    mdTable(
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
  const wrapperRow = mdTable(
    ["workload", ...MODES.filter((m) => m.id !== "A").map((m) => `${m.id} wrapper µs/tx`)],
    WORKLOADS.map((w) => [w.label, ...MODES.filter((m) => m.id !== "A").map((m) => med(m.id, w.id, (x) => x.wrapperUs).toFixed(1))]),
  );
  const perRound = mdTable(
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
    const calls = rs.reduce((n, r) => n + r.calls, 0);
    const perCall = calls ? `; learn's own CPU over its whole run ÷ calls recorded: ${median(rs.map((r) => r.wrapperUs / r.calls)).toFixed(1)} µs per call (median over runs)` : "";
    return `- ${m}: ${range(rs.map((r) => r.calls))} calls per run (${rs.length} runs), ${range(rs.map((r) => r.distinct))} distinct syscalls in ${range(rs.map((r) => r.contexts))} contexts${perCall}`;
  };
  const report = [
    `Machine: ${machine.nproc} CPUs (\`nproc\`), "${machine.cpu}", kernel ${machine.kernel}, ${machine.postgres}, ${machine.strace}, Node ${process.version}.`,
    `\`uptime\` at start: \`${uptime0}\`; at end: \`${uptime1}\`.`,
    "",
    `Command: \`${command}\` (scale ${SCALE}, \`-c ${CLIENTS} -j ${JOBS} -T ${SECONDS}\`, ${ROUNDS} rounds, ${WARMUP} s warm-up after each start; ${elapsed.toFixed(0)} s after \`pgbench -i\`).`,
    "",
    "TPS: median over rounds. Ratios: median of the per-round ratios to A, min–max in parentheses. Learn cost ÷ strace cost:",
    "(1 − L÷A) ÷ (1 − S÷A) from the median ratios, per-round values in parentheses; * marks L ÷ A within noise of 1 (its per-round range includes 1).",
    "",
    tpsTable,
    "",
    "CPU time per transaction of the server and its wrapper (learn's node process with the supervisor thread, or strace),",
    "ratios as above; cost fraction (L÷A − 1) ÷ (S÷A − 1):",
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
    "What learn recorded (calls that went to the supervisor during the whole run, warm-up included):",
    "",
    ...(["LH", "L", "L0"] as const).map(recordedLine),
    "",
  ].join("\n");
  log("\n" + report);
  if (OUT) writeFileSync(OUT, report);
}

process.on("SIGINT", () => {
  if (current?.alive()) {
    if (current.mode === "S" && current.postmaster !== undefined) process.kill(current.postmaster, "SIGINT");
    else current.proc.kill("SIGINT");
  }
});

main().catch((e: unknown) => {
  process.stderr.write(`learn-bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
