// The supervisor under load (issue 8): what per-connection classification costs, what a flood of
// denied calls does to other sessions and to the launcher, and how fast a stopped supervisor
// fails closed. On a real PostgreSQL 15 server (Debian's), as the postgres OS user.
//
//   npm run bench:supervisor                 (as root)
//   BENCH_QUICK=1 npm run bench:supervisor   (a smoke run: short runs, one round)
//
// One throwaway cluster, initialised once (`pgbench -i -s SCALE`, a role alice, a database
// analytics, a PL/pgSQL function). Server modes:
//
//   A  unfiltered: postgres exec'd directly as the postgres user (bench/support/server.ts);
//   B  `pg_seccomp run --policy P`, P = the starter profile + per-role and per-backend-type rules
//      (session_syscall_error = '*, execve', session_syscall_allow.alice = '*, execve',
//      archiver_syscall_allow = '*, execve', database_syscall_error.analytics = '*, execve'):
//      contexts differ, so execve and mmap/mprotect(PROT_EXEC) go to the supervisor, and a child
//      of the postmaster is classified on its first such call;
//   C  `pg_seccomp run` with the starter profile alone: one context, nothing to classify.
//
// 1. Classification cost. `pgbench -S -C` (a connection per transaction) and `pgbench -C` with a
//    script that calls a PL/pgSQL function (the backend maps plpgsql.so with PROT_EXEC: the
//    server's own code, which the exec gate lets in without classifying: docs/design.md), and
//    `pgbench -C` with a script that calls pgcrypto's digest() (the backend loads pgcrypto.so and
//    libcrypto: not the server's own code, so under B every connection is classified and its
//    context injected once), under A, B and C; each round runs the modes
//    in a rotated order, ratios are per round. The launcher's PG_SECCOMP_STATS=1 line counts
//    classification requests, the time the main thread took to answer them, and monitor queries.
// 2. Other sessions during a flood. On B, a superuser session runs a DO loop of
//    `copy (select 1) to program 'true'` in exception handlers (every iteration: a fork whose
//    execve the session's context denies, in the supervisor). Measured with and without it:
//    `psql -c 'select 1'` connect+query+exit (not classified) and `psql -c 'do ...'` (classified),
//    p50/p95, and `pgbench -S -C`; A without a flood as the reference.
// 3. The launcher during the flood: VmRSS sampled, VmHWM, its own CPU, the violation log's size.
// 4. Fail closed. (a) SIGSTOP the launcher, start a COPY TO PROGRAM, time until the postmaster is
//    gone (the watchdog). (b) Stop only the supervisor thread (ptrace PTRACE_SEIZE+INTERRUPT on
//    its thread, from a small python3 helper), time until the postmaster is gone (the main
//    thread's heartbeat check).
//
// This is a benchmark: it never asserts timings. It fails only if something does not work.
//
// Environment (defaults; BENCH_QUICK=1 changes the second value):
//   BENCH_SUP_SECONDS       -T of each measured pgbench run in part 1 (10 / 3)
//   BENCH_SUP_ROUNDS        rounds of parts 1 and 2               (3 / 1)
//   BENCH_SUP_FLOOD_SECONDS -T of pgbench in part 2                (5 / 2)
//   BENCH_SUP_LATENCY_N     psql runs per latency sample           (30 / 10)
//   BENCH_SUP_FC_ROUNDS     rounds of each fail-closed measurement (3 / 1)
//   BENCH_SUP_SCALE         pgbench -i -s                          (2)
//   BENCH_SUP_CLIENTS, BENCH_SUP_JOBS  -c, -j                      (4, 2)
//   BENCH_SUP_OUT           also write the markdown report to this file

import { spawn, type ChildProcess } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";

import { createCluster, destroyCluster, pgbench, query, type Cluster } from "../src/postgres/cluster.js";
import { MonitorConnection } from "../src/supervisor/monitor.js";
import { hasClientConnection, listenSockets } from "../src/host/sockets.js";
import { readParentAndStart, readTitle } from "../src/host/proc.js";
import { log, machine, mdTable, median, positiveInt, quantile } from "./support/report.js";
import { childrenOf, CLI, currentServer, launcherStats, serverCpuUs, startServer, stopServer, type BenchServer, type ServerSpec } from "./support/server.js";

const QUICK = process.env.BENCH_QUICK === "1";
const SECONDS = positiveInt(process.env.BENCH_SUP_SECONDS, QUICK ? 3 : 10);
const ROUNDS = positiveInt(process.env.BENCH_SUP_ROUNDS, QUICK ? 1 : 3);
const FLOOD_SECONDS = positiveInt(process.env.BENCH_SUP_FLOOD_SECONDS, QUICK ? 2 : 5);
const LATENCY_N = positiveInt(process.env.BENCH_SUP_LATENCY_N, QUICK ? 10 : 30);
const FC_ROUNDS = positiveInt(process.env.BENCH_SUP_FC_ROUNDS, QUICK ? 1 : 3);
const SCALE = positiveInt(process.env.BENCH_SUP_SCALE, 2);
const CLIENTS = positiveInt(process.env.BENCH_SUP_CLIENTS, 4);
const JOBS = positiveInt(process.env.BENCH_SUP_JOBS, 2);
const OUT = process.env.BENCH_SUP_OUT;

const PROFILE = new URL("../../profiles/postgresql-15-x86_64.conf", import.meta.url).pathname;
const RULES = [
  "session_syscall_error = '*, execve'",
  "session_syscall_allow.alice = '*, execve'",
  "archiver_syscall_allow = '*, execve'",
  "database_syscall_error.analytics = '*, execve'",
];

// ---------------------------------------------------------------------------------------------
// Files: policies and logs in a root-owned directory the server's user cannot write.

const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-supbench-"));
chmodSync(dir, 0o755);
const perRolePolicy = join(dir, "per-role.conf");
writeFileSync(perRolePolicy, readFileSync(PROFILE, "utf8") + "\n# supervisor-bench: contexts that differ\n" + RULES.join("\n") + "\n", { mode: 0o644 });
const plScript = join(dir, "plpgsql.sql");
writeFileSync(plScript, "\\set aid random(1, 100000 * :scale)\nselect bench_abalance(:aid);\n", { mode: 0o644 });
const extScript = join(dir, "extension.sql");
writeFileSync(extScript, "select length(digest('x', 'sha256'));\n", { mode: 0o644 });
let logs = 0;
const newLog = () => join(dir, `violations-${++logs}.jsonl`);

type ModeId = "A" | "B" | "C";
function spec(mode: ModeId, logPath?: string): ServerSpec {
  const stats = { PG_SECCOMP_STATS: "1" };
  if (mode === "A") return { label: "A unfiltered" };
  if (mode === "B") return { label: "B per-role policy", runArgs: ["--policy", perRolePolicy, ...(logPath ? ["--log", logPath] : [])], env: stats };
  return { label: "C starter profile", runArgs: [...(logPath ? ["--log", logPath] : [])], env: stats };
}
const MODE_LABEL: Record<ModeId, string> = { A: "A unfiltered", B: "B starter + per-role rules", C: "C starter profile alone" };

// ---------------------------------------------------------------------------------------------
// Processes

function clientEnv(c: Cluster, extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres", ...extra };
}

interface Done {
  code: number | null;
  ms: number;
  stdout: string;
  stderr: string;
}

/** Runs a client without blocking the event loop (samplers keep running). */
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 120_000): Promise<Done> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    p.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill("SIGKILL"), timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, ms: performance.now() - t0, stdout, stderr });
    });
  });
}

async function runPgbench(c: Cluster, args: string[], what: string): Promise<{ tps: number; transactions: number }> {
  const r = await run(join(c.binDir, "pgbench"), args, clientEnv(c), 600_000);
  if (r.code !== 0) throw new Error(`pgbench ${args.join(" ")} (${what}) failed:\n${r.stderr}\n${r.stdout}`);
  const tps = /^tps = ([\d.]+)/m.exec(r.stdout);
  const tx = /number of transactions actually processed: (\d+)/.exec(r.stdout);
  if (!tps || !tx) throw new Error(`pgbench (${what}): no tps in\n${r.stdout}`);
  return { tps: Number(tps[1]), transactions: Number(tx[1]) };
}

/** Waits (up to 3 s) until the backends of the last run have exited, so that their CPU is in. */
async function settled(pm: number, auxiliary: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (childrenOf(pm).length > auxiliary && Date.now() < deadline) await sleep(50);
  await sleep(50);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function statusKb(pid: number, field: string): number {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+) kB`, "m").exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}

/** utime + stime of one live process (all its threads), in ms. */
function ownCpuMs(pid: number): number {
  try {
    const rest = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100; // USER_HZ is 100 on Linux
  } catch {
    return NaN;
  }
}

/** utime + stime of one thread of a live process, in ms. */
function threadCpuMs(pid: number, tid: number): number {
  try {
    const rest = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return ((Number(rest[11]) + Number(rest[12])) * 1000) / 100;
  } catch {
    return NaN;
  }
}

function gone(pid: number): boolean {
  try {
    return /^[ZX]/.test(readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, ""));
  } catch {
    return true;
  }
}

function fileSize(p: string): number {
  try {
    return statSync(p).size;
  } catch {
    return 0;
  }
}

// ---------------------------------------------------------------------------------------------
// Part 1: classification cost

interface Workload {
  id: string;
  label: string;
  args: () => string[];
}

const WORKLOADS: Workload[] = [
  { id: "S-C", label: "`pgbench -S -C` (select-only, connect per transaction)", args: () => ["-S", "-C"] },
  { id: "PL-C", label: "`pgbench -C -f plpgsql.sql` (a PL/pgSQL function per connection)", args: () => ["-C", "-n", "-f", plScript, "-D", `scale=${SCALE}`] },
  { id: "EXT-C", label: "`pgbench -C -f extension.sql` (pgcrypto's digest() per connection: classified)", args: () => ["-C", "-n", "-f", extScript] },
];

const MODES: ModeId[] = ["A", "B", "C"];
const rotate = <T>(xs: T[], k: number) => [...xs.slice(xs.length - (k % xs.length)), ...xs.slice(0, xs.length - (k % xs.length))];

interface CostSample {
  round: number;
  mode: ModeId;
  workload: string;
  tps: number;
  transactions: number;
  cpuUs: number;
  /** Filtered modes: the launcher's own CPU (all its threads), per transaction. */
  launcherUs: number;
  /** The launcher's main thread alone (classification, injection, the monitor's client), per transaction. */
  mainThreadUs: number;
  load: number;
  stats?: Record<string, number>;
}

async function part1(cluster: Cluster): Promise<CostSample[]> {
  const out: CostSample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const order = rotate(MODES, round);
    log(`\n## part 1, round ${round + 1}/${ROUNDS}: ${order.join(" ")}`);
    for (const w of WORKLOADS) {
      for (const mode of order) {
        const s = await startServer(cluster, spec(mode, newLog()));
        await runPgbench(cluster, ["-S", "-c", String(CLIENTS), "-j", String(JOBS), "-T", "1"], "warm-up");
        const auxiliary = childrenOf(s.postmaster).length;
        await settled(s.postmaster, auxiliary);
        const cpu0 = serverCpuUs(s);
        const launcher0 = mode === "A" ? NaN : ownCpuMs(s.spawnedPid);
        const main0 = mode === "A" ? NaN : threadCpuMs(s.spawnedPid, s.spawnedPid);
        const load = loadavg()[0]!;
        const r = await runPgbench(cluster, [...w.args(), "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(SECONDS)], `${mode} ${w.id}`);
        await settled(s.postmaster, auxiliary);
        const cpuUs = (serverCpuUs(s) - cpu0) / r.transactions;
        // Where the filtered server's CPU goes: the launcher's own threads, and of them its main
        // thread (the monitor's backend is in the cgroup's figure, not here).
        const launcherUs = ((ownCpuMs(s.spawnedPid) - launcher0) * 1000) / r.transactions;
        const mainThreadUs = ((threadCpuMs(s.spawnedPid, s.spawnedPid) - main0) * 1000) / r.transactions;
        await stopServer(s);
        const stats = mode === "A" ? undefined : launcherStats(s.output());
        if (mode !== "A" && !stats) throw new Error(`${mode}: the launcher printed no PG_SECCOMP_STATS line\n${s.output()}`);
        out.push({ round, mode, workload: w.id, tps: r.tps, transactions: r.transactions, cpuUs, launcherUs, mainThreadUs, load, ...(stats ? { stats } : {}) });
        log(
          `  ${w.id.padEnd(5)} ${MODE_LABEL[mode].padEnd(28)} ${r.tps.toFixed(0).padStart(5)} TPS ${cpuUs.toFixed(0).padStart(6)} µs CPU/tx  load ${load.toFixed(2)}` +
            (stats ? `  launcher ${launcherUs.toFixed(0)} µs/tx (main thread ${mainThreadUs.toFixed(0)}); notifications ${stats.notifications}, injections ${stats.injections} (main thread ${(stats.injectMainThreadMs! / Math.max(1, stats.injections!)).toFixed(2)} ms avg); classifications ${stats.classifications} (${(stats.classifyMsTotal! / Math.max(1, stats.classifications!)).toFixed(2)} ms avg, ${stats.classifyMsMax!.toFixed(1)} max), monitor queries ${stats.monitorQueries}, sessions ${stats.monitorSessions}` : ""),
        );
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Part 1b: the pieces of one classification, timed from here with the launcher's own functions
// (host/sockets.ts, host/proc.ts, monitor.ts) against live backends of a B server: what the main thread does
// for each request, without the message hops between threads.

interface Piece {
  what: string;
  us: number[];
}

async function profileClassification(cluster: Cluster): Promise<Piece[]> {
  const N = QUICK ? 50 : 300;
  log(`\n## part 1b: the pieces of a classification, ${N} times each`);
  const s = await startServer(cluster, spec("B"));
  const sleepers = Array.from({ length: 4 }, () =>
    spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-c", "select pg_sleep(600) -- bench sleeper"], { env: clientEnv(cluster), stdio: "ignore" }),
  );
  const pieces: Piece[] = [];
  const monitor = new MonitorConnection({ postmasterPid: s.postmaster, user: { uid: cluster.user.uid, gid: cluster.user.gid, name: cluster.user.name } });
  try {
    let pids: number[] = [];
    for (let i = 0; i < 100 && pids.length < 4; i++) {
      await sleep(100);
      pids = query(cluster, "select pid from pg_stat_activity where query like '%bench sleeper' and pid <> pg_backend_pid()").split("\n").filter(Boolean).map(Number);
    }
    const time = (what: string, f: (pid: number) => unknown) => {
      const us: number[] = [];
      for (let i = 0; i < N; i++) {
        const t = performance.now();
        f(pids[i % pids.length]!);
        us.push((performance.now() - t) * 1000);
      }
      pieces.push({ what, us });
    };
    time("listenSockets(postmaster) (once per launcher)", () => listenSockets(s.postmaster));
    const listen = listenSockets(s.postmaster);
    time("readParentAndStart(pid) (/proc/PID/stat)", (pid) => readParentAndStart(pid));
    time("hasClientConnection(pid) (/proc/PID/fd + /proc/PID/net/unix, tcp, tcp6)", (pid) => {
      if (!hasClientConnection(pid, listen)) throw new Error(`pid ${pid} has no client connection?`);
    });
    time("readTitle(pid) (/proc/PID/cmdline)", (pid) => readTitle(pid));
    if (!(await monitor.whenUp(5000))) throw new Error("the monitoring session did not open");
    const us: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      const row = await monitor.activity(pids[i % pids.length]!);
      us.push((performance.now() - t) * 1000);
      if (!row || row === "none") throw new Error("no activity row");
    }
    pieces.push({ what: "monitor.activity(pid) (one query over the monitor's own protocol client, round trip)", us });
    pieces.push(await injectionPiece(N));
  } finally {
    monitor.close();
    for (const p of sleepers) p.kill("SIGINT");
    query(cluster, "select pg_terminate_backend(pid) from pg_stat_activity where query like '%bench sleeper' and pid <> pg_backend_pid()");
    await stopServer(s);
  }
  for (const p of pieces) log(`  ${p.what}: median ${median(p.us).toFixed(0)} µs, p95 ${quantile(p.us, 0.95).toFixed(0)} µs`);
  return pieces;
}

/**
 * An injection of the session context's filter (what the launcher does once per classified
 * process), timed from seize to the filter in, into N processes a python3 parent forked without
 * exec (they share its vDSO, as backends share the postmaster's). Not server processes: the
 * installed program of a server would send the injected seccomp call to its supervisor.
 */
async function injectionPiece(n: number): Promise<Piece> {
  const { PendingInjection } = await import("../src/kernel/index.js");
  const { loadPolicyFile } = await import("../src/policy/policy.js");
  const { compose, injectedProgram } = await import("../src/compile/compose.js");
  const policy = loadPolicyFile(perRolePolicy);
  const prog = injectedProgram(policy, "x86_64", { context: "session" }, compose(policy, "x86_64", { contexts: [] }));
  if (!prog) throw new Error("the session context injects nothing under the per-role policy?");
  const forker = spawn("python3", ["-c", `import os, sys, time
for i in range(${n}):
    if os.fork() == 0:
        time.sleep(600); os._exit(0)
print("ok", flush=True); time.sleep(600)`], { stdio: ["ignore", "pipe", "inherit"] });
  await new Promise<void>((r) => forker.stdout!.once("data", () => r()));
  const kids = childrenOf(forker.pid!);
  const us: number[] = [];
  try {
    for (const pid of kids) {
      const t = performance.now();
      const p = new PendingInjection(pid, prog, { log: true, allThreads: true });
      while (p.poll() !== "done") await sleep(1);
      us.push((performance.now() - t) * 1000);
    }
  } finally {
    for (const pid of kids) process.kill(pid, "SIGKILL");
    forker.kill("SIGKILL");
  }
  return { what: `inject the session's filter (${prog.length} instructions; PendingInjection, polled every 1 ms) into a sleeping forked process`, us };
}

// ---------------------------------------------------------------------------------------------
// Parts 2 and 3: a flood of denied calls

interface Flood {
  stop(): Promise<void>;
  iterations(): number;
}

function startFlood(cluster: Cluster): Flood {
  // Effectively endless; cancelled when done (WHEN OTHERS does not catch query_canceled).
  const sql =
    "do $$ begin for i in 1..10000000 loop begin perform pg_catalog.nextval('flood_count'); " +
    "copy (select 1) to program 'true'; exception when others then null; end; end loop; end $$";
  const p: ChildProcess = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-c", sql], {
    env: clientEnv(cluster, { PGAPPNAME: "bench flood" }),
    stdio: "ignore",
  });
  const exited = new Promise<void>((r) => p.on("exit", () => r()));
  const count = () => Number(query(cluster, "select last_value from flood_count"));
  const base = count();
  return {
    iterations: () => count() - base,
    async stop() {
      query(cluster, "select pg_catalog.pg_cancel_backend(pid) from pg_catalog.pg_stat_activity where application_name = 'bench flood'");
      const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
      await exited;
      clearTimeout(t);
    },
  };
}

interface Latency {
  selectMs: number[];
  doMs: number[];
}

async function latencies(cluster: Cluster): Promise<Latency> {
  const psql = join(cluster.binDir, "psql");
  const env = clientEnv(cluster);
  const selectMs: number[] = [];
  const doMs: number[] = [];
  for (let i = 0; i < LATENCY_N; i++) {
    const a = await run(psql, ["-X", "-q", "-c", "select 1"], env);
    if (a.code !== 0) throw new Error(`psql select 1 failed: ${a.stderr}`);
    selectMs.push(a.ms);
    const b = await run(psql, ["-X", "-q", "-c", "do $$ begin perform 1; end $$"], env);
    if (b.code !== 0) throw new Error(`psql do failed: ${b.stderr}`);
    doMs.push(b.ms);
  }
  return { selectMs, doMs };
}

interface FloodSample {
  round: number;
  condition: "A quiet" | "B quiet" | "B flood";
  lat: Latency;
  tps: number;
  load: number;
  /** During a flood: */
  floodRate?: number;
  rss?: { before: number; samples: number[]; after: number; hwm: number };
  launcherCpuPct?: number;
  logBytes?: number;
  logLines?: number;
  stats?: Record<string, number>;
  suppressedNotes?: number;
}

async function measureCondition(cluster: Cluster, round: number, condition: FloodSample["condition"], s: BenchServer, logPath?: string): Promise<FloodSample> {
  const launcher = s.spawnedPid;
  const flooding = condition === "B flood";
  let flood: Flood | undefined;
  let rssBefore = NaN;
  const samples: number[] = [];
  let sampler: NodeJS.Timeout | undefined;
  let cpu0 = NaN;
  let t0 = 0;
  let log0 = 0;
  if (flooding) {
    rssBefore = statusKb(launcher, "VmRSS");
    log0 = fileSize(logPath!);
    cpu0 = ownCpuMs(launcher);
    t0 = performance.now();
    sampler = setInterval(() => samples.push(statusKb(launcher, "VmRSS")), 250);
    flood = startFlood(cluster);
    await sleep(1000); // let it reach its pace
  }
  const load = loadavg()[0]!;
  const lat = await latencies(cluster);
  const r = await runPgbench(cluster, ["-S", "-C", "-c", String(CLIENTS), "-j", String(JOBS), "-T", String(FLOOD_SECONDS)], `${condition} pgbench`);
  const sample: FloodSample = { round, condition, lat, tps: r.tps, load };
  if (flood) {
    const n = flood.iterations();
    const secs = (performance.now() - t0) / 1000;
    await flood.stop();
    clearInterval(sampler);
    const cpuMs = ownCpuMs(launcher) - cpu0;
    await sleep(2000);
    sample.floodRate = n / secs;
    sample.launcherCpuPct = (cpuMs / 1000 / secs) * 100;
    sample.rss = { before: rssBefore, samples, after: statusKb(launcher, "VmRSS"), hwm: statusKb(launcher, "VmHWM") };
    sample.logBytes = fileSize(logPath!) - log0; // the whole file's lines and bytes are read once the server stopped
  }
  return sample;
}

async function part23(cluster: Cluster): Promise<FloodSample[]> {
  const out: FloodSample[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    log(`\n## parts 2-3, round ${round + 1}/${ROUNDS}`);
    const order: Array<"A" | "B"> = round % 2 === 0 ? ["A", "B"] : ["B", "A"];
    for (const m of order) {
      const logPath = newLog();
      const s = await startServer(cluster, spec(m, logPath));
      await runPgbench(cluster, ["-S", "-c", String(CLIENTS), "-j", String(JOBS), "-T", "1"], "warm-up");
      const conds: FloodSample["condition"][] = m === "A" ? ["A quiet"] : round % 2 === 0 ? ["B quiet", "B flood"] : ["B flood", "B quiet"];
      const here: FloodSample[] = [];
      for (const c of conds) here.push(await measureCondition(cluster, round, c, s, logPath));
      await stopServer(s);
      const stats = m === "B" ? launcherStats(s.output()) : undefined;
      for (const x of here) {
        if (x.condition === "B flood") {
          const text = existsSync(logPath) ? readFileSync(logPath, "utf8") : "";
          x.logLines = text.split("\n").filter(Boolean).length;
          x.logBytes = text.length;
          x.suppressedNotes = (s.output().match(/events suppressed in the last/g) ?? []).length;
          if (stats) x.stats = stats;
        }
        out.push(x);
        log(
          `  ${x.condition.padEnd(8)} select1 p50 ${median(x.lat.selectMs).toFixed(1)} p95 ${quantile(x.lat.selectMs, 0.95).toFixed(1)} ms; ` +
            `do p50 ${median(x.lat.doMs).toFixed(1)} p95 ${quantile(x.lat.doMs, 0.95).toFixed(1)} ms; -S -C ${x.tps.toFixed(0)} TPS; load ${x.load.toFixed(2)}` +
            (x.rss
              ? `\n           flood ${x.floodRate!.toFixed(0)} denied execs/s; launcher RSS ${x.rss.before} → max ${Math.max(...x.rss.samples)} → ${x.rss.after} kB, HWM ${x.rss.hwm} kB; ` +
                `launcher CPU ${x.launcherCpuPct!.toFixed(0)} %; log ${x.logLines} lines, ${x.logBytes} bytes; stats ${JSON.stringify(x.stats)}`
              : ""),
        );
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Part 4: fail closed

interface FailClosed {
  kind: "launcher stopped (watchdog)" | "supervisor thread stopped (heartbeat)";
  ms: number;
  message: boolean;
}

/** The supervisor worker's thread: the one sitting in poll(listener, 1 fd, 100 or 5 ms). */
async function supervisorThread(launcher: number): Promise<number | undefined> {
  for (let i = 0; i < 100; i++) {
    for (const t of readdirSafe(`/proc/${launcher}/task`)) {
      try {
        const f = readFileSync(`/proc/${launcher}/task/${t}/syscall`, "utf8").trim().split(" ");
        if (f[0] === "7" && f[2] === "0x1" && (f[3] === "0x64" || f[3] === "0x5")) return Number(t);
      } catch {
        /* gone */
      }
    }
    await sleep(20);
  }
  return undefined;
}

function readdirSafe(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

const STALL_HELPER = `
import ctypes, sys, signal
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
tid = int(sys.argv[1])
if libc.ptrace(0x4206, tid, None, None) != 0 or libc.ptrace(0x4207, tid, None, None) != 0:
    print("ptrace failed", ctypes.get_errno(), flush=True); sys.exit(1)
print("stopped", flush=True)
signal.pause()
`;

async function part4(cluster: Cluster): Promise<FailClosed[]> {
  const out: FailClosed[] = [];
  log(`\n## part 4: fail closed, ${FC_ROUNDS} rounds each`);
  for (let round = 0; round < FC_ROUNDS; round++) {
    // (a) The whole launcher stopped.
    {
      const s = await startServer(cluster, spec("B"));
      const pm = s.postmaster;
      process.kill(s.spawnedPid, "SIGSTOP");
      const t0 = performance.now();
      const hung = run(join(cluster.binDir, "psql"), ["-X", "-c", "copy (select 1) to program 'true'"], clientEnv(cluster), 60_000);
      while (!gone(pm) && performance.now() - t0 < 30_000) await sleep(10);
      const ms = performance.now() - t0;
      process.kill(s.spawnedPid, "SIGCONT");
      await hung;
      await stopServer(s, true);
      const message = /watchdog: the launcher \(pid \d+\) has been stopped/.test(s.output());
      out.push({ kind: "launcher stopped (watchdog)", ms, message });
      log(`  launcher SIGSTOP → postmaster gone after ${ms.toFixed(0)} ms (watchdog message: ${message})`);
    }
    // (b) Only the supervisor thread stopped; the launcher's main thread runs on.
    {
      const s = await startServer(cluster, spec("B"));
      const pm = s.postmaster;
      // The worker starts when the server does; a call makes sure its loop is running.
      query(cluster, "select 1");
      const tid = await supervisorThread(s.spawnedPid);
      if (tid === undefined) {
        log("  supervisor thread not found (no thread in poll on the listener); stall path not measured");
        await stopServer(s);
        continue;
      }
      const helper = spawn("python3", ["-c", STALL_HELPER, String(tid)], { stdio: ["ignore", "pipe", "inherit"] });
      const started = await new Promise<string>((r) => helper.stdout!.once("data", (d: Buffer) => r(d.toString())));
      const t0 = performance.now();
      if (!started.startsWith("stopped")) {
        helper.kill("SIGKILL");
        log(`  could not stop the supervisor thread: ${started.trim()}; stall path not measured`);
        await stopServer(s);
        continue;
      }
      const hung = run(join(cluster.binDir, "psql"), ["-X", "-c", "copy (select 1) to program 'true'"], clientEnv(cluster), 60_000);
      while (!gone(pm) && performance.now() - t0 < 30_000) await sleep(10);
      const ms = performance.now() - t0;
      helper.kill("SIGKILL");
      await hung;
      await stopServer(s, true);
      const message = /the supervisor has not answered for/.test(s.output());
      out.push({ kind: "supervisor thread stopped (heartbeat)", ms, message });
      log(`  supervisor thread ${tid} ptrace-stopped → postmaster gone after ${ms.toFixed(0)} ms (heartbeat message: ${message})`);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Main

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error("run this benchmark as root (the server runs as the postgres OS user)");
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing; build first (npm run bench:supervisor does)`);
  const m = machine();
  const command = [
    QUICK ? "BENCH_QUICK=1" : "",
    ...["SECONDS", "ROUNDS", "FLOOD_SECONDS", "LATENCY_N", "FC_ROUNDS", "SCALE", "CLIENTS", "JOBS"]
      .map((k) => `BENCH_SUP_${k}`)
      .filter((k) => process.env[k])
      .map((k) => `${k}=${process.env[k]}`),
    "npm run bench:supervisor",
  ]
    .filter(Boolean)
    .join(" ");
  const load0 = loadavg();
  log(`# supervisor: classification, floods, fail-closed${QUICK ? " (QUICK)" : ""}`);
  log(`machine: ${m.nproc} CPUs, "${m.cpu}", kernel ${m.kernel}, ${m.postgres}, Node ${m.node}; load ${load0.map((x) => x.toFixed(2)).join(" ")}`);
  const cluster = await createCluster();
  log(`cluster: ${cluster.dataDir} (port ${cluster.port})`);
  const loads: number[] = [];
  const loadTimer = setInterval(() => loads.push(loadavg()[0]!), 5000);
  const t0 = Date.now();
  let cost: CostSample[] = [];
  let pieces: Piece[] = [];
  let flood: FloodSample[] = [];
  let fc: FailClosed[] = [];
  try {
    {
      const s = await startServer(cluster, spec("A"));
      const r = pgbench(cluster, ["-i", "-q", "-s", String(SCALE)], { timeoutMs: 600_000 });
      if (!r.ok) throw new Error(`pgbench -i failed:\n${r.stderr}`);
      for (const sql of [
        "create role alice login",
        "create database analytics",
        "create sequence flood_count",
        "create function bench_abalance(int) returns int language plpgsql as $$ begin return (select abalance from pgbench_accounts where aid = $1); end $$",
        "create extension pgcrypto",
        "vacuum analyze",
      ]) query(cluster, sql);
      await stopServer(s);
    }
    cost = await part1(cluster);
    pieces = await profileClassification(cluster);
    flood = await part23(cluster);
    fc = await part4(cluster);
  } finally {
    clearInterval(loadTimer);
    const c = currentServer();
    if (c) await stopServer(c, true).catch(() => undefined);
    destroyCluster(cluster);
    rmSync(dir, { recursive: true, force: true });
  }
  const elapsed = (Date.now() - t0) / 1000;
  const load1 = loadavg();

  // --- Report -------------------------------------------------------------------------------
  const f1 = (x: number) => x.toFixed(1);
  const f3 = (x: number) => x.toFixed(3);
  const range = (xs: number[], f: (x: number) => string) => (xs.length ? `${f(median(xs))} (${f(Math.min(...xs))}–${f(Math.max(...xs))})` : "-");
  const ratios = (mode: ModeId, wl: string, metric: (x: CostSample) => number) => {
    const rs: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const a = cost.find((x) => x.round === r && x.mode === "A" && x.workload === wl);
      const b = cost.find((x) => x.round === r && x.mode === mode && x.workload === wl);
      if (a && b) rs.push(metric(b) / metric(a));
    }
    return rs;
  };
  const of = (mode: ModeId, wl: string) => cost.filter((x) => x.mode === mode && x.workload === wl);
  const costTable = mdTable(
    ["workload", "A TPS", "B TPS", "B ÷ A", "C TPS", "C ÷ A", "CPU/tx B ÷ A", "CPU/tx C ÷ A"],
    WORKLOADS.map((w) => [
      w.label,
      median(of("A", w.id).map((x) => x.tps)).toFixed(0),
      median(of("B", w.id).map((x) => x.tps)).toFixed(0),
      range(ratios("B", w.id, (x) => x.tps), f3),
      median(of("C", w.id).map((x) => x.tps)).toFixed(0),
      range(ratios("C", w.id, (x) => x.tps), f3),
      range(ratios("B", w.id, (x) => x.cpuUs), f3),
      range(ratios("C", w.id, (x) => x.cpuUs), f3),
    ]),
    [false, true, true, true, true, true, true, true],
  );
  const statRows = WORKLOADS.flatMap((w) =>
    (["B", "C"] as ModeId[]).map((mode) => {
      const xs = of(mode, w.id);
      const per = (k: string) => xs.map((x) => (x.stats?.[k] ?? 0) / (x.transactions + CLIENTS));
      const avgMs = xs.map((x) => (x.stats?.classifications ? x.stats.classifyMsTotal! / x.stats.classifications : NaN)).filter((x) => !Number.isNaN(x));
      return [
        `${w.id} ${mode}`,
        median(xs.map((x) => x.transactions)).toFixed(0),
        median(xs.map((x) => x.stats?.classifications ?? 0)).toFixed(0),
        range(per("classifications"), f3),
        range(per("monitorQueries"), f3),
        avgMs.length ? range(avgMs, (x) => x.toFixed(2)) : "-",
        xs.length ? Math.max(...xs.map((x) => x.stats?.classifyMsMax ?? 0)).toFixed(1) : "-",
        median(xs.map((x) => x.stats?.monitorSessions ?? 0)).toFixed(0),
        range(xs.map((x) => x.launcherUs), (x) => x.toFixed(0)),
        range(xs.map((x) => x.mainThreadUs), (x) => x.toFixed(0)),
        range(per("notifications"), f3),
        range(per("serverCodeMappings"), f3),
        range(xs.map((x) => x.cpuUs), (x) => x.toFixed(0)),
      ];
    }),
  );
  const statTable = mdTable(
    ["run", "transactions (connections)", "classification requests", "per connection", "monitor queries per connection", "main-thread ms per classification, median of run averages (min–max)", "max ms", "monitor sessions opened", "launcher CPU µs/tx", "of it its main thread µs/tx", "notifications to the supervisor per connection", "server-code mappings let in per connection", "whole server CPU µs/tx"],
    statRows,
    [false, true, true, true, true, true, true, true, true, true, true, true, true],
  );
  const profileText = [
    "The pieces of one classification, timed from the bench with the launcher's own functions against 4 live backends of a B server (µs):",
    "",
    mdTable(["piece", "median µs", "p95 µs"], pieces.map((p) => [p.what, median(p.us).toFixed(0), quantile(p.us, 0.95).toFixed(0)]), [false, true, true]),
  ].join("\n");
  const conds: FloodSample["condition"][] = ["A quiet", "B quiet", "B flood"];
  const fOf = (c: FloodSample["condition"]) => flood.filter((x) => x.condition === c);
  const allMs = (c: FloodSample["condition"], k: keyof Latency) => fOf(c).flatMap((x) => x.lat[k]);
  const latTable = mdTable(
    ["condition", "`select 1` p50 ms", "p95 ms", "`do` (PL/pgSQL) p50 ms", "p95 ms", "`pgbench -S -C` TPS, median (min–max)"],
    conds.map((c) => [
      c,
      f1(median(allMs(c, "selectMs"))),
      f1(quantile(allMs(c, "selectMs"), 0.95)),
      f1(median(allMs(c, "doMs"))),
      f1(quantile(allMs(c, "doMs"), 0.95)),
      range(fOf(c).map((x) => x.tps), (x) => x.toFixed(0)),
    ]),
    [false, true, true, true, true, true],
  );
  const fl = fOf("B flood");
  const memTable = mdTable(
    ["round", "flood (denied execs/s)", "launcher VmRSS before kB", "during: max sampled kB", "after kB", "VmHWM kB", "launcher CPU %", "log lines", "log bytes", "classifications", "statement lookups"],
    fl.map((x) => [
      String(x.round + 1),
      x.floodRate!.toFixed(0),
      String(x.rss!.before),
      String(Math.max(...x.rss!.samples)),
      String(x.rss!.after),
      String(x.rss!.hwm),
      x.launcherCpuPct!.toFixed(0),
      String(x.logLines),
      String(x.logBytes),
      String(x.stats?.classifications ?? "-"),
      String(x.stats?.statementLookups ?? "-"),
    ]),
    [true, true, true, true, true, true, true, true, true, true, true],
  );
  const fcTable = mdTable(
    ["what stopped", "rounds", "time to postmaster gone, ms: median (min–max)", "message in the launcher's output"],
    (["launcher stopped (watchdog)", "supervisor thread stopped (heartbeat)"] as const).map((k) => {
      const xs = fc.filter((x) => x.kind === k);
      return [k, String(xs.length), range(xs.map((x) => x.ms), (x) => x.toFixed(0)), xs.length ? `${xs.filter((x) => x.message).length}/${xs.length}` : "-"];
    }),
    [false, true, true, true],
  );
  const report = [
    `Machine: ${m.nproc} CPUs (\`nproc\`), "${m.cpu}", kernel ${m.kernel}, ${m.postgres}, Node ${m.node}.`,
    `Load average (1/5/15 min) at start ${load0.map((x) => x.toFixed(2)).join("/")}, at end ${load1.map((x) => x.toFixed(2)).join("/")}; ` +
      `1-minute load sampled every 5 s during the run: median ${median(loads).toFixed(2)}, min ${Math.min(...loads).toFixed(2)}, max ${Math.max(...loads).toFixed(2)}.`,
    "",
    `Command: \`${command}\` (scale ${SCALE}, \`-c ${CLIENTS} -j ${JOBS}\`, part 1 \`-T ${SECONDS}\` × ${ROUNDS} rounds, part 2 ${LATENCY_N} psql runs of each kind and \`-T ${FLOOD_SECONDS}\` per condition × ${ROUNDS} rounds, part 4 ${FC_ROUNDS} rounds; ${elapsed.toFixed(0)} s after initdb).`,
    "",
    "**1. Classification cost.** TPS: median over rounds; ratios: median of per-round ratios to A (min–max). CPU: the server's whole cgroup (launcher included under run) per transaction.",
    "",
    costTable,
    "",
    "Launcher counters (PG_SECCOMP_STATS=1; whole server run, including the 1 s warm-up's 4 connections; per connection = ÷ (transactions + 4)):",
    "",
    statTable,
    "",
    "A's whole-server CPU per transaction for comparison: " + WORKLOADS.map((w) => `${w.id} ${range(of("A", w.id).map((x) => x.cpuUs), (x) => x.toFixed(0))} µs`).join(", ") + ".",
    "",
    profileText,
    "",
    `**2. Other sessions during a flood** (latency: ${LATENCY_N} runs per round of each psql, pooled over rounds; a run is spawn + connect + query + exit):`,
    "",
    latTable,
    "",
    "**3. The launcher during the flood** (VmRSS sampled every 250 ms; log lines and bytes written by that server run; the flood runs through part 2's measurements):",
    "",
    memTable,
    "",
    "**4. Fail closed:**",
    "",
    fcTable,
    "",
  ].join("\n");
  log("\n" + report);
  if (OUT) {
    writeFileSync(OUT, report);
    log(`written to ${OUT}`);
  }
}

process.on("SIGINT", () => {
  const c = currentServer();
  if (c?.alive()) c.proc.kill("SIGINT");
});

main().catch((e: unknown) => {
  process.stderr.write(`supervisor-bench: ${(e as Error).stack ?? String(e)}\n`);
  process.exitCode = 1;
});
