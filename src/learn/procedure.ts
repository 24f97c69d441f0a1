// The runs `pg_seccomp learn` and `learn --verify` put a server through, so that what a policy is
// learned (or checked) on includes what a production server does sooner or later and a short
// test does not: the periodic timers (checkpoint_timeout, bgwriter_delay, wal_writer_delay,
// autovacuum_naptime, archive_timeout), and crash recovery. The issue that asked for this: a
// policy learned on 10 s of pgbench killed the background writer at 15 s and then the startup
// process in the crash recovery that followed.
//
// Run 1: the server with its timers shortened on the command line; a CHECKPOINT as soon as it
// accepts connections (the next timed one is then checkpoint_timeout later), the workload as the
// server's OS user, then VACUUM, ANALYZE, a WAL switch and a table with enough dead rows for
// autovacuum; then we wait until a timed checkpoint and an autovacuum worker have been seen (or
// the wait runs out), sampling pg_stat_activity for the backend types that ran; then an immediate
// stop (SIGQUIT). Run 2: the server starts again and recovers from the crash; a backend is killed
// with SIGKILL, so the postmaster goes through its in-place crash restart and recovery too; then a
// CHECKPOINT and a fast stop.
//
// Every session opened here runs as the server's OS user with PGHOST/PGPORT from postmaster.pid,
// so peer authentication works. What the server writes (postmaster.pid, query output) is read as
// plain text with bounded formats; nothing here follows a path the server chose.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import type { Policy } from "../policy/policy.js";
import type { Arch } from "../syscalls/index.js";
import { runServer, serverUser, type RunRequest, type RunResult } from "../launcher/run.js";
import type { ViolationEvent } from "../host/violation-event.js";
import type { OsUser } from "../postgres/cluster.js";
import { readPostmasterPidFile, type PostmasterPidFile } from "../host/server-files.js";
import { postgresMajorVersion } from "../postgres/cluster.js";

/** The periodic timers, shortened to their minimum useful values for a learning or verify run. */
export const SHORT_TIMERS: readonly (readonly [string, string])[] = [
  ["checkpoint_timeout", "30s"],
  ["bgwriter_delay", "10ms"],
  ["wal_writer_delay", "10ms"],
  ["autovacuum_naptime", "1s"],
  ["archive_timeout", "5s"],
];

/** postgres -c arguments for SHORT_TIMERS (the command line beats postgresql.conf and ALTER SYSTEM). */
export function timerArgs(): string[] {
  return SHORT_TIMERS.flatMap(([k, v]) => ["-c", `${k}=${v}`]);
}

/** Default wait for the timer paths, from the server's start: a timed checkpoint needs checkpoint_timeout after the first CHECKPOINT. */
export const DEFAULT_TIMER_WAIT_S = 50;

/** pg_stat_activity's backend_type -> the policy's context name. */
export function contextOfBackendType(t: string): string {
  if (t === "client backend") return "session";
  return t.trim().replace(/ /g, "_");
}

export interface Coverage {
  /** Contexts in which the supervisor recorded calls (full keys reduced to the context). */
  recorded: string[];
  /** Backend types seen in pg_stat_activity, as contexts ("session", "checkpointer", ...). */
  ran: string[];
  timers: { name: string; seen: boolean; detail: string }[];
  crash: { immediateStop: boolean; recovered: boolean; inPlaceRestart: boolean };
  /** Why the run cannot be called complete; empty when it can. */
  missing: string[];
}

/** The coverage report, one line per item. `kinds` are the contexts the policy language knows. */
export function formatCoverage(c: Coverage, kinds: readonly string[]): string[] {
  const ran = new Set([...c.ran, ...c.recorded]);
  const never = kinds.filter((k) => k !== "postmaster" && !ran.has(k));
  const yes = (b: boolean) => (b ? "yes" : "NO");
  return [
    "coverage:",
    `  contexts with calls recorded: ${c.recorded.length ? c.recorded.join(", ") : "none"}`,
    `  backend types seen running:   ${c.ran.length ? c.ran.join(", ") : "none"}`,
    `  never ran (nothing learned for them: they get the global lists): ${never.length ? never.join(", ") : "none"}`,
    ...c.timers.map((t) => `  timer ${t.name}: ${t.seen ? "fired" : "NOT SEEN"} (${t.detail})`),
    `  crash: immediate stop ${yes(c.crash.immediateStop)}, restart and recovery ${yes(c.crash.recovered)}, backend killed and in-place crash restart ${yes(c.crash.inPlaceRestart)}`,
    c.missing.length ? `  INCOMPLETE: not seen: ${c.missing.join("; ")}` : "  complete: every timer path and crash recovery ran",
  ];
}

// ---------------------------------------------------------------------------------------------
// Sessions as the server's OS user

export interface Endpoint {
  host: string;
  port: string;
}

/** Port and host from postmaster.pid (lines 4 and 5; line 6 when there is no socket directory). */
export function serverEndpoint(pidFile: PostmasterPidFile): Endpoint | undefined {
  const { port, socketDir, listenAddress: listen } = pidFile;
  if (!port) return undefined;
  const host = socketDir ? socketDir : listen && listen !== "*" ? listen : "localhost";
  return { host, port };
}

/** The home directory of `user` (for psql's .pgpass and .psqlrc), or "/". */
function homeOf(user: OsUser): string {
  const r = spawnSync("getent", ["passwd", user.name], { encoding: "utf8" });
  return r.stdout?.trim().split(":")[5] || "/";
}

/** libpq variables that would point a client at another server than the one learned. */
const SERVER_CHOOSING = new Set(["PGHOST", "PGHOSTADDR", "PGPORT", "PGSERVICE", "PGSERVICEFILE", "PGUSER"]);

/**
 * Environment and credentials for a client of the server: its OS user, its socket and port.
 * learn's own queries get no PG* variable of the caller's; the user's workload (`keepUserPg`)
 * keeps theirs (PGDATABASE, PGOPTIONS, a script's own PGBIN, ...) except those that choose the
 * server, which are this server's.
 */
export function clientSpawn(ep: Endpoint, user: OsUser | undefined, binDir: string, keepUserPg = false): { env: NodeJS.ProcessEnv; uid?: number; gid?: number } {
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("NODE_") && (!k.startsWith("PG") || (keepUserPg && !SERVER_CHOOSING.has(k))))),
    PGHOST: ep.host, PGPORT: ep.port,
    PATH: `${binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
  };
  if (!user) return { env };
  return { env: { ...env, PGUSER: user.name, USER: user.name, LOGNAME: user.name, HOME: homeOf(user) }, uid: user.uid, gid: user.gid };
}

/** Waits until postmaster.pid names `pid` and says ready (or standby). */
export async function waitAccepting(dataDir: string, pid: number, alive: () => boolean, timeoutMs = 120_000): Promise<Endpoint> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error("the server exited before accepting connections");
    try {
      const f = readPostmasterPidFile(dataDir);
      if (f === undefined) throw new Error("not there yet");
      const ep = serverEndpoint(f);
      if (f.pid === pid && ep && /^(ready|standby)/.test(f.status)) return ep;
    } catch {
      /* not there yet */
    }
    await sleep(100);
  }
  throw new Error(`the server did not accept connections within ${timeoutMs / 1000} s`);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Session {
  constructor(
    readonly ep: Endpoint,
    readonly user: OsUser | undefined,
    readonly binDir: string,
  ) {}

  /** One psql -c as the server's user; resolves with its output, rejects with its error. */
  sql(text: string, timeoutMs = 120_000): Promise<string> {
    const c = clientSpawn(this.ep, this.user, this.binDir);
    return runPsql({ psql: join(this.binDir, "psql"), sql: text, connect: ["-d", "postgres"], quiet: true, ...c, timeoutMs }).then((r) => {
      if (!r.ok) throw new Error(`${text.slice(0, 60)}: ${r.stderr.trim().split("\n")[0]}`);
      return r.stdout.trim();
    });
  }

  async num(text: string): Promise<number | undefined> {
    try {
      const n = Number(await this.sql(text, 10_000));
      return Number.isFinite(n) ? n : undefined;
    } catch {
      return undefined;
    }
  }

  /** A shell command as the server's user (the workload); its output lines go to `line`. */
  shell(command: string, line: (s: string) => void): { child: ChildProcess; done: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
    const c = clientSpawn(this.ep, this.user, this.binDir, true);
    const child = spawn("sh", ["-c", command], { ...c, stdio: ["ignore", "pipe", "pipe"], detached: true });
    const forward = (stream: NodeJS.ReadableStream) => {
      let buf = "";
      stream.on("data", (d: Buffer) => {
        buf += d.toString();
        const parts = buf.split("\n");
        buf = parts.pop()!;
        for (const p of parts) line(`  | ${p}`);
      });
      stream.on("end", () => buf && line(`  | ${buf}`));
    };
    forward(child.stdout!);
    forward(child.stderr!);
    const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => {
      child.on("error", () => res({ code: 127, signal: null }));
      child.on("exit", (code, signal) => res({ code, signal }));
    });
    return { child, done };
  }
}

// Timed checkpoints: pg_stat_checkpointer from 17, pg_stat_bgwriter before (only the view the
// server has is queried: a missing view writes an ERROR to the server log at every poll).
const AUTOVACUUMS = "select coalesce(sum(autovacuum_count + autoanalyze_count), 0) from pg_stat_all_tables";
const ARCHIVED = "select archived_count + failed_count from pg_stat_archiver";
// A table with enough dead rows that autovacuum (threshold 50 + 20%) must visit it.
const BAIT = "pg_seccomp_learn_autovacuum";

export function timedCheckpointsQuery(major: number): string {
  return major >= 17 ? "select num_timed from pg_stat_checkpointer" : "select checkpoints_timed from pg_stat_bgwriter";
}

/**
 * A session of its own on which a backend waits (pg_sleep) until killed: psql reading its
 * statements from a pipe, so the backend's pid is known from its own answer, not looked up.
 */
export class SleepingBackend {
  private readonly child: ChildProcess;
  private out = "";
  readonly done: Promise<void>;

  constructor(ep: Endpoint, user: OsUser | undefined, binDir: string) {
    const c = clientSpawn(ep, user, binDir);
    this.child = spawn(join(binDir, "psql"), ["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", "postgres"], { ...c, stdio: ["pipe", "pipe", "pipe"] });
    this.child.stdout!.on("data", (d: Buffer) => void (this.out += d.toString()));
    this.child.stderr!.resume();
    this.done = new Promise((res) => {
      this.child.on("exit", () => res());
      this.child.on("error", () => res());
    });
    this.child.stdin!.write("select 'pid:' || pg_backend_pid();\n");
  }

  /** The backend's pid once it answered (undefined when psql ended or the deadline passed first). */
  async pid(deadlineMs: number, alive: () => boolean): Promise<number | undefined> {
    const deadline = Date.now() + deadlineMs;
    let ended = false;
    void this.done.then(() => (ended = true));
    while (Date.now() < deadline && alive() && !ended) {
      const m = /pid:(\d+)/.exec(this.out);
      if (m) {
        this.child.stdin!.write("select pg_sleep(3600);\n");
        return Number(m[1]);
      }
      await sleep(50);
    }
    return undefined;
  }

  end(): void {
    try {
      this.child.stdin!.end();
      this.child.kill("SIGKILL");
    } catch {
      /* gone */
    }
  }
}

// Seccomp kills, from the kernel's audit records in /dev/kmsg: src/host/kmsg.ts reads them.
export { parseKmsgKills, readKmsg, type KmsgKill } from "../host/kmsg.js";
import { lastKmsgSeq as lastSeqOf, readKmsg } from "../host/kmsg.js";
import { runPsql } from "../host/psql.js";
import { readChildren } from "../host/proc.js";

export function lastKmsgSeq(records = readKmsg()): number {
  return lastSeqOf(records);
}

/** The server's processes now (the postmaster's children), pid -> title; read as text only. */
function childrenOf(pid: number): number[] {
  return readChildren(pid);
}

// ---------------------------------------------------------------------------------------------
// The procedure

export interface ProcedureOptions {
  policy: Policy;
  policyPath: string;
  arch: Arch;
  /** postgres and its arguments. */
  command: string[];
  dataDir: string | undefined;
  workload?: string;
  user?: string;
  logPath?: string;
  insecurePolicyPermissions?: boolean;
  /** Shorten the timers and wait for them (default true). */
  timers?: boolean;
  /** Immediate stop, restart and recovery, and an in-place crash restart (default true). */
  crash?: boolean;
  /** Seconds from the start of run 1 to wait for the timer paths at most. */
  timerWaitS?: number;
  /** postgres -c arguments added to the command (verify's standard set: archiving, a small max_wal_size). */
  extraArgs?: string[];
  /** Run after the workload in run 1 (verify's standard set); what it could not do goes to failures. */
  afterWorkload?: (s: Session, ctx: { dataDir: string; major: number; pm: number; line: (s: string) => void; failures: string[] }) => Promise<void>;
  onEvent: (e: ViolationEvent) => void;
  line: (s: string) => void;
}

/**
 * The supervisor's rate-limit notes, counted instead of printed: `take` says whether a line was
 * one (and swallows it), `summary` is the one line said at the end (undefined when none came).
 */
export function rateLimitNotes(): { take: (line: string) => boolean; summary: () => string | undefined } {
  let suppressed = 0;
  let limited = false;
  return {
    take: (line) => {
      const m = /(\d+) violation-log events suppressed/.exec(line);
      if (m) suppressed += Number(m[1]);
      else if (/violation-log rate limit reached/.test(line)) limited = true;
      else return false;
      return true;
    },
    summary: () =>
      limited || suppressed > 0
        ? `rate limit: the supervisor wrote ${suppressed ? `${suppressed} fewer` : "fewer"} violation-log records than calls (repeats only: the first call of each syscall in each context is always recorded)`
        : undefined,
  };
}

/**
 * Stops the server by its pid whatever happens: `first` (SIGINT: fast shutdown; SIGQUIT:
 * immediate), then SIGQUIT after `graceMs`, then SIGKILL of the postmaster 30 s later, until
 * `done()` says it exited. Returns a function that cancels the escalation.
 */
export function stopByPid(pm: number, first: NodeJS.Signals, done: () => boolean, line: (s: string) => void, graceMs = 60_000, killMs = 30_000): () => void {
  const send = (sig: NodeJS.Signals) => {
    try {
      process.kill(pm, sig);
    } catch {
      /* gone */
    }
  };
  send(first);
  const t1 = setTimeout(() => {
    if (done()) return;
    line(`the server (pid ${pm}) did not stop within ${graceMs / 1000} s: immediate stop (SIGQUIT)`);
    send("SIGQUIT");
  }, graceMs);
  const t2 = setTimeout(() => {
    if (done()) return;
    line(`the server (pid ${pm}) did not stop: SIGKILL`);
    send("SIGKILL");
  }, graceMs + killMs);
  t1.unref();
  t2.unref();
  return () => {
    clearTimeout(t1);
    clearTimeout(t2);
  };
}

export interface ProcedureResult {
  runs: RunResult[];
  coverage: Coverage;
  workloadStatus?: { code: number | null; signal: NodeJS.Signals | null };
  /** What went wrong (the workload failed, the server did not come back, ...). */
  failures: string[];
  /** Every pid seen as a child of the postmaster (for attributing kernel kill records). */
  pids: Set<number>;
  /** /dev/kmsg's last sequence number before run 1. */
  kmsgBefore: number;
}

/** Runs the server through the procedure (see the top of this file). */
export async function runProcedure(o: ProcedureOptions): Promise<ProcedureResult> {
  const timers = o.timers ?? true;
  const crash = (o.crash ?? true) && o.workload !== undefined;
  const postgres = o.command[0]!;
  const binDir = dirname(resolve(postgres));
  const user = serverUser(o.user);
  const dataDir = o.dataDir ? resolve(o.dataDir) : undefined;
  const failures: string[] = [];
  const ran = new Set<string>();
  const pids = new Set<number>();
  const timerItems: Coverage["timers"] = [];
  const crashInfo = { immediateStop: false, recovered: false, inPlaceRestart: false };
  const kmsgBefore = lastKmsgSeq();
  let workloadStatus: ProcedureResult["workloadStatus"];
  const line = o.line;

  const major = postgresMajorVersion(postgres);
  const timedCheckpoints = (s: Session) => s.num(timedCheckpointsQuery(major));
  const command = [...o.command, ...(timers ? timerArgs() : []), ...(o.extraArgs ?? [])];
  const stops: (() => void)[] = [];
  const baseReq = (onStarted: (pid: number) => void): RunRequest => ({
    policy: o.policy, policyPath: o.policyPath, arch: o.arch, command, user: o.user, specAllow: false,
    insecurePolicyPermissions: o.insecurePolicyPermissions ?? false, logPath: o.logPath,
    say: line, onEvent: o.onEvent, onStarted,
  });

  // Samples the postmaster's children (for kill attribution) and pg_stat_activity's backend types.
  const watch = (pm: number, session: () => Session | undefined) => {
    let stopped = false;
    const procs = setInterval(() => {
      for (const c of childrenOf(pm)) pids.add(c);
    }, 50);
    const types = (async () => {
      while (!stopped) {
        const s = session();
        if (s) {
          try {
            const out = await s.sql("select distinct backend_type from pg_stat_activity where backend_type is not null", 5000);
            for (const t of out.split("\n").filter(Boolean)) ran.add(contextOfBackendType(t));
          } catch {
            /* the server is stopping or busy */
          }
        }
        await sleep(1000);
      }
    })();
    return async () => {
      stopped = true;
      clearInterval(procs);
      await types;
    };
  };

  // ---- run 1
  let serverDone = false;
  let task: Promise<void> | undefined;
  let sentQuit = false;
  let session: Session | undefined;
  const run1 = async (pm: number): Promise<void> => {
    const stopWatch = watch(pm, () => session);
    try {
      if (o.workload === undefined || !dataDir) {
        // No workload: the server runs until stopped (SIGINT or SIGTERM to us, forwarded).
        if (dataDir) session = new Session(await waitAccepting(dataDir, pm, () => !serverDone), user, binDir);
        while (!serverDone) await sleep(200);
        return;
      }
      let started = Date.now();
      const ep = await waitAccepting(dataDir, pm, () => !serverDone);
      session = new Session(ep, user, binDir);
      const s = session;
      const before = { checkpoints: await timedCheckpoints(s), autovacuum: await s.num(AUTOVACUUMS), archived: await s.num(ARCHIVED) };
      if (timers) await s.sql("CHECKPOINT").catch((e: Error) => failures.push(`CHECKPOINT failed: ${e.message}`));
      line(`server accepts connections (${ep.host}, port ${ep.port}); running the workload as ${user?.name ?? "this user"}: ${o.workload}`);
      const w = s.shell(o.workload, line);
      workloadStatus = await w.done;
      if (workloadStatus.code !== 0) {
        const how = workloadStatus.signal ?? `exit code ${workloadStatus.code}`;
        failures.push(`the workload failed (${how})`);
        line(`workload failed (${how}); stopping the server`);
        return;
      }
      line("workload done");
      if (o.afterWorkload) {
        await o.afterWorkload(s, { dataDir, major, pm, line, failures });
        // Checkpoints the steps requested (WAL volume) restart checkpoint_timeout: the wait for a
        // timed one starts now, after a CHECKPOINT of our own.
        if (timers) await s.sql("CHECKPOINT").catch((e: Error) => failures.push(`CHECKPOINT failed: ${e.message}`));
        started = Date.now();
      }
      if (!timers) return;
      line("timer round: VACUUM, ANALYZE, a WAL switch, a table for autovacuum; waiting for a timed checkpoint and an autovacuum worker");
      for (const q of [
        `DROP TABLE IF EXISTS ${BAIT}`, `CREATE TABLE ${BAIT} AS SELECT g AS i FROM generate_series(1, 2000) g`, `DELETE FROM ${BAIT}`,
        "VACUUM", "ANALYZE", "SELECT pg_switch_wal()",
      ]) {
        await s.sql(q).catch((e: Error) => failures.push(`timer round: ${e.message}`));
      }
      const waitMs = (o.timerWaitS ?? DEFAULT_TIMER_WAIT_S) * 1000;
      const archiving = (await s.sql("show archive_mode").catch(() => "off")) !== "off";
      let now = { checkpoints: before.checkpoints, autovacuum: before.autovacuum, archived: before.archived };
      // An autovacuum worker lives briefly: its visits in pg_stat_all_tables say it ran too.
      const autovacuumRan = () => ran.has("autovacuum_worker") || (now.autovacuum ?? 0) > (before.autovacuum ?? 0);
      const seen = () =>
        (now.checkpoints ?? 0) > (before.checkpoints ?? 0) && autovacuumRan() && (!archiving || (now.archived ?? 0) > (before.archived ?? 0));
      while (Date.now() - started < waitMs) {
        await sleep(1000);
        now = { checkpoints: await timedCheckpoints(s), autovacuum: await s.num(AUTOVACUUMS), archived: await s.num(ARCHIVED) };
        if (seen() && Date.now() - started > 35_000) break;
      }
      const secs = ((Date.now() - started) / 1000).toFixed(0);
      if (autovacuumRan()) ran.add("autovacuum_worker");
      timerItems.push(
        { name: "checkpoint_timeout", seen: (now.checkpoints ?? 0) > (before.checkpoints ?? 0), detail: `30s; timed checkpoints ${before.checkpoints ?? "?"} -> ${now.checkpoints ?? "?"} in ${secs} s` },
        { name: "autovacuum_naptime", seen: autovacuumRan(), detail: `1s; autovacuum worker ${ran.has("autovacuum_worker") ? "seen" : "not seen"} in pg_stat_activity, autovacuum/analyze runs ${before.autovacuum ?? "?"} -> ${now.autovacuum ?? "?"}` },
        { name: "bgwriter_delay", seen: ran.has("background_writer"), detail: `10ms for ${secs} s` },
        { name: "wal_writer_delay", seen: ran.has("walwriter"), detail: `10ms for ${secs} s` },
        ...(archiving ? [{ name: "archive_timeout", seen: (now.archived ?? 0) > (before.archived ?? 0), detail: `5s; archived ${before.archived ?? "?"} -> ${now.archived ?? "?"}` }] : []),
      );
      await s.sql(`DROP TABLE IF EXISTS ${BAIT}`).catch(() => undefined);
    } catch (e) {
      if (o.workload !== undefined) failures.push((e as Error).message);
    } finally {
      await stopWatch();
      if (!serverDone && o.workload !== undefined) {
        const ok = failures.length === 0 && crash;
        sentQuit = ok;
        line(ok ? "crash round: immediate stop (SIGQUIT)" : "stopping the server (fast shutdown)");
        stops.push(stopByPid(pm, ok ? "SIGQUIT" : "SIGINT", () => serverDone, line));
      }
    }
  };
  const runs: RunResult[] = [];
  try {
    runs.push(await runServer(baseReq((pid) => (task = run1(pid)))));
  } finally {
    serverDone = true;
  }
  await task;
  crashInfo.immediateStop = sentQuit;
  if (!sentQuit && (runs[0]!.code !== 0 || runs[0]!.signal) && failures.length === 0) failures.push(`the server exited with ${runs[0]!.signal ?? `code ${runs[0]!.code}`}`);

  // ---- run 2: restart after the immediate stop (crash recovery), then an in-place crash restart
  if (sentQuit && dataDir) {
    serverDone = false;
    task = undefined;
    session = undefined;
    const run2 = async (pm: number): Promise<void> => {
      const stopWatch = watch(pm, () => session);
      try {
        const t0 = Date.now();
        const ep = await waitAccepting(dataDir, pm, () => !serverDone);
        crashInfo.recovered = true;
        ran.add("startup");
        line(`crash round: recovered, accepting connections after ${((Date.now() - t0) / 1000).toFixed(1)} s; killing a backend (SIGKILL) for an in-place crash restart`);
        session = new Session(ep, user, binDir);
        const s = session;
        // Our own connection: its backend says its pid, we kill that one (no lookup, no fixed wait).
        const sleeper = new SleepingBackend(ep, user, binDir);
        const victim = await sleeper.pid(120_000, () => !serverDone);
        if (victim === undefined || !childrenOf(pm).includes(victim)) {
          sleeper.end();
          throw new Error("crash round: the backend to kill did not answer (its session failed, or the server stopped)");
        }
        process.kill(victim, "SIGKILL");
        await Promise.race([sleeper.done, sleep(30_000)]);
        sleeper.end();
        // The postmaster kills every child, reinitializes and runs recovery again.
        const deadline = Date.now() + 60_000;
        let back = false;
        await sleep(500);
        while (!back && Date.now() < deadline && !serverDone) {
          back = (await s.num("select 1")) === 1;
          if (!back) await sleep(200);
        }
        if (!back) throw new Error("crash round: the server did not come back after the in-place crash restart");
        crashInfo.inPlaceRestart = true;
        await s.sql("CHECKPOINT");
        line("crash round: back after the in-place crash restart; CHECKPOINT; stopping the server");
      } catch (e) {
        failures.push((e as Error).message);
      } finally {
        await stopWatch();
        if (!serverDone) stops.push(stopByPid(pm, "SIGINT", () => serverDone, line));
      }
    };
    try {
      runs.push(await runServer(baseReq((pid) => (task = run2(pid)))));
    } finally {
      serverDone = true;
    }
    await task;
    const r2 = runs[1]!;
    if ((r2.code !== 0 || r2.signal) && failures.length === 0) failures.push(`the server exited with ${r2.signal ?? `code ${r2.code}`} after the crash round`);
  }

  for (const cancel of stops) cancel();
  const missing: string[] = [];
  if (o.workload === undefined) missing.push("no --workload (the server ran until stopped: no timer round, no crash round)");
  if (!timers) missing.push("the timers were not shortened (--no-timers): no timer round");
  for (const t of timerItems) if (!t.seen) missing.push(`timer ${t.name} (${t.detail})`);
  if (o.workload !== undefined && !crash) missing.push("no crash round (--no-crash-round)");
  else if (o.workload !== undefined && !(crashInfo.recovered && crashInfo.inPlaceRestart)) missing.push("crash recovery did not complete");
  const coverage: Coverage = { recorded: [], ran: [...ran].sort(), timers: timerItems, crash: crashInfo, missing };
  return { runs, coverage, ...(workloadStatus ? { workloadStatus } : {}), failures, pids, kmsgBefore };
}
