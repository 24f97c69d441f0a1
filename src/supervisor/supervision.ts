// Supervising a server: take the filter's listener from the process that installed it, answer
// its notifications on a worker thread (supervisor-worker.ts), classify processes, keep the
// violation log, the run state and the monitoring session, watch the supervisor and fail closed.
// Used by both ways of starting a server: with the launcher as the postmaster's parent (run.ts,
// runServer) and with postgres exec'd in place of the launcher (supervise-main.ts).

import { closeSync, existsSync, readdirSync, readlinkSync } from "node:fs";
import { resolve } from "node:path";
import { MessageChannel, Worker } from "node:worker_threads";
import { close, closeProcEvents, injectSeccompFilter, KernelError, MINIMUM_KERNEL, notifContinueKnown, notifSend, openProcEvents, PendingInjection, pidfdGetFd, pidfdOpen, readForkEvents, setNotDumpable } from "../kernel/index.js";
import type { Policy } from "../policy/policy.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";
import { ClassificationService } from "./classification.js";
import type { Classification } from "./supervisor-core.js";
import {
  ClientFilterRefusal, clientFilterProgram, clientFilterSpec, describeRequestError, launcherTable, openClientFilterSpool,
  takeClientFilterRequest, writeClientResult, writeClientRows, writeLauncherTable, type ClientFilterResult, type ClientFilterSpool,
} from "./client-filter.js";
import { effectiveFilterRows, type FilterRow } from "../render/effective-table.js";
import { MonitorConnection } from "./monitor.js";
import { clientsNeedServerRow, compose, execGateOnly, injectedProgram, type Composition } from "../compile/compose.js";
import { findServerCode } from "../host/server-code.js";
import { backendIdentityReader, type BackendIdentityReader } from "./backend-identity.js";
import { postgresMajorVersion, type OsUser } from "../postgres/cluster.js";
import type { Insn } from "../bpf/insn.js";
import { clientRecordPrefix, ensureRunStateDir, launcherTablePath, removeRunState, removeStatePath, writeContexts, writeRunState } from "../host/run-state.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { kernelRecordEvent, type KnownProcess } from "./client-denials.js";
import { openSeccompRecordSource, type SeccompRecordSource } from "../host/kmsg.js";
import { readPostmasterPidFile } from "../host/server-files.js";
import { serverLogLine } from "./log-sinks.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import type { SupervisorWorkerData, WorkerAnswer, WorkerEvent, WorkerRequest } from "./supervisor-worker.js";
import { DEFAULT_LOG_MAX_BYTES, defaultLogPath, ViolationLog } from "./violation-log.js";
import type { LogTarget } from "./log-sinks.js";
import { killServerTree, startWatchdog } from "./watchdog.js";
import { UsageProblem } from "../errors.js";
import { readChildren, readParentAndStart, readStartTime, readTitle, readYamaPtraceScope } from "../host/proc.js";

import { TIME_SCALE } from "./time-scale.js";
export { TIME_SCALE, timeScale } from "./time-scale.js";
/** How long the supervisor thread may go without a heartbeat before the server is stopped. */
export const SUPERVISOR_STALL_MS = 3000 * TIME_SCALE;
/** How long a classified process may take to stop for its context's filter before it is killed (fail closed). */
export const INJECT_STOP_MS = 10_000 * TIME_SCALE;
/** Injections whose target may run its one instruction at once (more wait, stopped, for a slot). */
export const INJECT_SLOTS = 64;
/** How long the supervisor thread may take to start. */
export const SUPERVISOR_START_MS = 30_000 * TIME_SCALE;
/** How long the stage may take to install its filter. */
export const STAGE_FILTER_MS = 30_000 * TIME_SCALE;

export class SupervisionError extends UsageProblem {
  override name = "UsageError";
}

export interface SupervisionRequest {
  /** The postmaster's pid (also the process that holds the listener until we take it). */
  postmasterPid: number;
  policy: Policy;
  policyPath: string;
  arch: Arch;
  /** The server's OS user, when we are root. */
  user?: OsUser;
  /** Its groups (for the log's reader group check). */
  userGids?: number[];
  dataDir?: string;
  /** The postgres executable (psql is looked for beside it). */
  postgresPath: string;
  logPath?: string;
  logMaxBytes?: number;
  /** run --log-to: where records go (default: the file). */
  logTo?: readonly LogTarget[];
  /** False when the policy sends nothing to a supervisor: only the run state is kept. */
  usesSupervisor: boolean;
  /**
   * What the installed program routes, when the caller composed it already (run does): else it
   * is composed on the first classification (a fraction of a second of the main thread).
   */
  installed?: Pick<Composition, "routed" | "unknownRouted" | "perProcess">;
  /** Watchdog mode: also stop the server if this process disappears (in place: nobody else would). */
  guardLauncherDeath: boolean;
  say: (line: string) => void;
  onEvent?: (e: ViolationEvent) => void;
  /** Is the server still there? */
  alive: () => boolean;
  /** Sends the postmaster a signal (through whatever path reaches it). */
  signal: (sig: NodeJS.Signals) => void;
}

export interface Supervision {
  events: ViolationEvent[];
  /** Why supervision failed (the server was then stopped), if it did. */
  failure(): Error | undefined;
  /** Closes the monitoring session (before a shutdown: a smart shutdown would wait for it). */
  closeMonitor(): void;
  /** Resolves when the worker has stopped by itself (every filtered process is gone). */
  workerDone: Promise<void>;
  /** Stops everything and removes the run state. */
  finish(): Promise<void>;
}

function isDenied(e: unknown): boolean {
  const code = (e as NodeJS.ErrnoException).code;
  return code === "EACCES" || code === "EPERM";
}

function listenerDenied(e: unknown): SupervisionError {
  return new SupervisionError(
    `cannot take the filter's listener from the stage process: ${(e as Error).message}\n` +
      `hint: run needs CAP_SYS_PTRACE (or the same user as the server, without a restrictive Yama ptrace_scope), ` +
      `and a container seccomp profile that allows pidfd_getfd (Docker: --cap-add SYS_PTRACE)`,
  );
}

/** Finds the seccomp listener among a process's fds (it installed its filter a moment ago). */
async function listenerOf(pid: number, gone: () => boolean): Promise<number> {
  const deadline = Date.now() + STAGE_FILTER_MS;
  while (Date.now() < deadline && !gone()) {
    try {
      for (const fd of readdirSync(`/proc/${pid}/fd`)) {
        try {
          if (readlinkSync(`/proc/${pid}/fd/${fd}`) === "anon_inode:seccomp notify") return Number(fd);
        } catch (e) {
          if (isDenied(e)) throw listenerDenied(e);
          /* closed meanwhile */
        }
      }
    } catch (e) {
      if (e instanceof SupervisionError) throw e;
      if (isDenied(e)) throw listenerDenied(e);
      /* not there yet */
    }
    await new Promise((r) => setTimeout(r, 2));
  }
  throw new SupervisionError(`the stage process did not install its filter (it exited or took over ${STAGE_FILTER_MS / 1000} s)`);
}

/**
 * Counters for benchmarks: with PG_SECCOMP_STATS=1 in the launcher's environment they are
 * written as one JSON line on stderr when supervision ends (bench/supervisor-bench.ts).
 */
// injectMsTotal: from the classifier's answer to the filter being in (the target's stop included);
// injectMainThreadMs: the launcher's main thread's own time in it (seize, polls, the injection).
const stats = { notifications: 0, serverCodeMappings: 0, classifications: 0, classifyMsTotal: 0, classifyMsMax: 0, statementLookups: 0, injections: 0, injectMsTotal: 0, injectMsMax: 0, injectMainThreadMs: 0, injectFailures: 0 };

export async function superviseServer(r: SupervisionRequest): Promise<Supervision> {
  // No /proc/PID/mem, ptrace or pidfd_getfd of the supervisor by the server's user (it holds the
  // listener and decides for every context): the process is non-dumpable from here on.
  if (r.usesSupervisor) setNotDumpable();
  const pid = r.postmasterPid;
  const user = r.user;
  const events: ViolationEvent[] = [];
  const dataDirAbs = r.dataDir ? resolve(r.dataDir) : "";
  const logPath = r.logPath ?? defaultLogPath(dataDirAbs || `pid-${pid}`);
  let worker: Worker | undefined;
  let workerExited: Promise<void> = new Promise(() => {});
  let log: ViolationLog | undefined;
  let monitor: MonitorConnection | undefined;
  const stop = new SharedArrayBuffer(4);
  const clientFilter = new SharedArrayBuffer(12);
  // Processes running the one instruction of their injection now (PendingInjection's step): the
  // worker lets their main thread's seccomp call through. Slots; 0 is free.
  const injecting = new SharedArrayBuffer(4 * INJECT_SLOTS);
  const clientFilterDone = new Set<string>();
  // The kernel's seccomp audit records (client-denials.ts): kills, and what set_client_filter()
  // filters deny. Attributed only to processes the supervisor knew alive (`known`: the postmaster,
  // every process the classifier pinned, narrowed sessions), else dropped and counted.
  const known = new Map<number, KnownProcess>();
  const pmStart = readStartTime(pid);
  if (pmStart !== undefined) known.set(pid, { start: pmStart, ctx: { context: "postmaster" } });
  const remember = (kpid: number, start: string, ctx: ContextSpec, narrowed = false, programOf?: number, note?: string, parent?: number) => {
    if (known.size >= 65_536) for (const [p, k] of known) if (k.goneAt !== undefined) known.delete(p);
    // Its parent, for telling its own fork event from a later one that hands its pid out again.
    const ppid = parent ?? readParentAndStart(kpid)?.ppid;
    if (known.size < 65_536 || known.has(kpid)) known.set(kpid, { start, ctx, ...(ppid !== undefined ? { ppid } : {}), ...(narrowed ? { narrowed } : {}), ...(programOf !== undefined ? { programOf } : {}), ...(note !== undefined ? { note } : {}) });
  };
  let records: SeccompRecordSource | undefined;
  // The kernel's fork events (kernel/proc-events.ts): a known pid handed out again is seen, so a
  // record of a process gone by the time it is read is its own, not a later holder's of the pid.
  let procEvents: number | undefined;
  let dropped = 0;
  let droppedSince = Date.now();
  let suppressedRecords = 0;
  // A set_client_filter() narrowing, or (with a note) a context's denials held in the kernel.
  const onNarrowed = (npid: number, start: string, ctx: ContextSpec, note?: string) => remember(npid, start, ctx, note === undefined, undefined, note);
  // One line in the server's log (our stderr, which postgres shares) per kind of call the policy
  // denied or killed in a server process or a program it ran: PostgreSQL's own message about a
  // failed child ("archive command failed", "terminated by signal 31") then has its cause beside it.
  const serverLogKinds = new Set<string>();
  const toServerLog = (e: ViolationEvent) => {
    if (e.action !== "error" && e.action !== "kill") return;
    const kind = `${e.context}\0${e.syscall}\0${e.action}\0${e.program ?? ""}`;
    if (serverLogKinds.has(kind) || serverLogKinds.size >= 1024) return;
    serverLogKinds.add(kind);
    r.say(serverLogLine(e));
  };
  const logEvent = (e: ViolationEvent) => {
    if (events.length < 10_000) events.push(e);
    log?.record(e);
    r.onEvent?.(e);
  };
  const summarizeDropped = (force = false) => {
    const now = Date.now();
    if (dropped === 0 && suppressedRecords === 0) return;
    if (!force && now - droppedSince < 60_000) return;
    const note = `${dropped} kernel seccomp record(s) of processes of the server's user the supervisor did not know (not the postmaster, a process it classified or a program one of them runs) dropped` +
      (suppressedRecords ? `; ${suppressedRecords} more not logged (over 100 a turn)` : "") + ` in the last ${Math.max(1, Math.round((now - droppedSince) / 1000))} s`;
    if (dropped) r.say(`pg_seccomp: ${note}`);
    logEvent({ time: new Date(now).toISOString(), pid: process.pid, process: "pg_seccomp (summary)", context: "unattributed", syscall: "*", nr: -1, args: [], action: "log", count: dropped + suppressedRecords, note });
    dropped = 0;
    suppressedRecords = 0;
    droppedSince = now;
  };
  const serverUid = user?.uid ?? process.getuid?.() ?? 0;
  let lastSweep = 0;
  const pollKernelRecords = () => {
    if (!records) return;
    // The postmaster's children the classifier has not seen yet (a backend killed before it made
    // a call the supervisor decides): known as server processes, context not known. The kernel's
    // parent link and start time say so; a pin replaces the entry when it comes.
    for (const c of readChildren(pid)) {
      if (known.has(c)) continue;
      const st = readParentAndStart(c);
      if (st && st.ppid === pid) remember(c, st.start, { context: "unclassified" });
    }
    const io = { now: () => Date.now(), stat: (p: number) => readParentAndStart(p), title: (p: number) => readTitle(p) };
    let emitted = 0;
    let recs;
    try {
      recs = records.take();
    } catch (e) {
      r.say(`pg_seccomp: note: the kernel's seccomp records cannot be read any more (${(e as Error).message})`);
      records.close();
      records = undefined;
      return;
    }
    // Read after the records: the process that made any of them was forked before it made it, so
    // its fork event is queued by now. A known pid forked again by a parent other than its own,
    // while the known process is not alive, names someone else now (the server's user cycled
    // the pid space to get it): forgotten before its records are attributed. Without the events,
    // or when the kernel dropped some, a record of a process gone by now cannot be told from a
    // later holder's of its pid: dropped and counted (fail closed).
    let goneAttributable = false;
    if (procEvents !== undefined) {
      try {
        // Bounded per turn (every process on the host is announced, another local user's fork
        // loop too): what is left makes this turn's records of gone processes unattributable.
        const { forks, lost } = readForkEvents(procEvents, 20_000);
        goneAttributable = !lost;
        for (const f of forks) {
          if (f.childPid !== f.childTgid) continue; // a new thread of an existing process
          const k = known.get(f.childTgid);
          if (!k) continue;
          if (readStartTime(f.childTgid) === k.start) continue; // alive: this was its own fork
          if (k.ppid !== undefined && f.parentTgid === k.ppid) continue; // its own fork (or its server parent's next)
          known.delete(f.childTgid);
        }
      } catch {
        goneAttributable = false;
      }
    }
    // Bounded per turn: a process hammering a killed or denied call cannot flood the log.
    for (const rec of recs) {
      const e = kernelRecordEvent(rec, known, io, goneAttributable);
      if (e === undefined) continue;
      if (e === "unknown") {
        // Counted when it ran as the server's user (the forger, or another cluster of that user):
        // other users' processes can never be the server's, and are none of this log's business.
        if (rec.uid === serverUid) dropped++;
        continue;
      }
      toServerLog(e);
      if (emitted++ >= 100) {
        suppressedRecords++;
        continue;
      }
      logEvent(e);
    }
    // A process gone is kept a while: its last records may be read on a later turn. Looked at
    // once a second (one /proc read per known process).
    const now = Date.now();
    if (now - lastSweep < 1000) return;
    lastSweep = now;
    for (const [kpid, k] of known) {
      if (k.goneAt === undefined && readStartTime(kpid) !== k.start) k.goneAt = now;
      if (k.goneAt !== undefined && now - k.goneAt > 10_000) known.delete(kpid);
    }
    summarizeDropped();
  };
  // Where set_client_filter() leaves its requests: the server's user writes, we read, through a
  // descriptor opened now and kept for the run (client-filter.ts says how it is checked).
  // Only when the policy enables set_client_filter: root creates nothing in PGDATA otherwise.
  let spool: ClientFilterSpool | string | undefined;
  if (dataDirAbs && r.policy.clientFilter) {
    spool = openClientFilterSpool(dataDirAbs, user ?? { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 });
    if (typeof spool === "string") r.say(`pg_seccomp: note: set_client_filter is off for this run: ${spool}`);
  }
  let failure: Error | undefined;
  const heartbeat = new SharedArrayBuffer(8);
  const heartbeatOrigin = Date.now();
  let beatTimer: NodeJS.Timeout | undefined;
  let watchdog: { stop(): void } | undefined;
  let failing = false;
  /** Stops the server because supervision cannot go on: SIGQUIT, then SIGKILL of every server process. */
  const failClosed = (why: string) => {
    if (failing || !r.alive()) return;
    failing = true;
    failure ??= new Error(why);
    r.say(`pg_seccomp: error: ${why}; stopping the server (fail closed)`);
    monitor?.close();
    r.signal("SIGQUIT");
    setTimeout(() => {
      if (r.alive()) killServerTree(pid);
    }, 5000).unref();
  };
  const cleanup = () => {
    if (beatTimer) clearInterval(beatTimer);
    watchdog?.stop();
    monitor?.close();
    log?.close();
    summarizeDropped(true);
    records?.close();
    if (procEvents !== undefined) closeProcEvents(procEvents);
    if (spool && typeof spool !== "string") closeSync(spool.fd);
    if (dataDirAbs) removeStatePath(launcherTablePath(dataDirAbs));
    removeRunState(pid);
  };
  try {
    ensureRunStateDir();
    writeRunState({
      launcherPid: process.pid, postmasterPid: pid, dataDir: dataDirAbs, policyPath: resolve(r.policyPath),
      arch: r.arch, logPath, startedAt: new Date().toISOString(),
    });
    // What seccomp_filter() reads at call time: the policy this launcher installed.
    if (dataDirAbs) {
      try {
        writeLauncherTable(launcherTablePath(dataDirAbs), launcherTable(r.policy, r.arch, pid, r.policyPath));
      } catch (e) {
        r.say(`pg_seccomp: note: the filter table for seccomp_filter() cannot be written: ${(e as Error).message}`);
      }
    }
    if (r.usesSupervisor) {
      const childFd = await listenerOf(pid, () => !r.alive());
      const pidfd = pidfdOpen(pid);
      let listenerFd: number;
      try {
        listenerFd = pidfdGetFd(pidfd, childFd);
      } catch (e) {
        throw isDenied(e) || (e as { code?: string }).code === "EPERM" ? listenerDenied(e) : e;
      } finally {
        close(pidfd);
      }
      // Asked on the listener itself (no other probe exists), before the supervisor answers
      // anything: the stage's execve is held until then, so postgres has not started.
      if (!notifContinueKnown(listenerFd)) {
        close(listenerFd);
        throw new SupervisionError(
          `this kernel lacks SECCOMP_USER_NOTIF_FLAG_CONTINUE (Linux 5.5): the supervisor lets the routed calls it allows proceed with it\n` +
            `hint: pg_seccomp needs Linux ${MINIMUM_KERNEL} or later (docs/deploy.md, "Kernel")`,
        );
      }
      // The monitor needs no psql (its own protocol client) and no data directory: it finds the
      // server's socket among the postmaster's own (monitor.ts). Its alarms go to the launcher's
      // messages (the server log or the journal), at most 5 a second.
      const alarmNotes = { second: 0, count: 0 };
      monitor = new MonitorConnection({
        postmasterPid: pid,
        ...(user ? { user: { uid: user.uid, gid: user.gid, name: user.name } } : {}),
        onAlarm: (why) => {
          const second = Math.floor(Date.now() / 1000);
          if (alarmNotes.second !== second) Object.assign(alarmNotes, { second, count: 0 });
          if (++alarmNotes.count <= 5) r.say(`pg_seccomp: alarm: monitor: ${why}`);
        },
      });
      const needsRow = clientsNeedServerRow(r.policy, r.arch);
      let identity: BackendIdentityReader | undefined;
      // Every row the classifier reads is checked against the process's own memory: its names and
      // walsender flag with a client connection, its backend type without one.
      {
        let major: number | undefined;
        try {
          major = postgresMajorVersion(r.postgresPath);
        } catch {
          major = undefined;
        }
        const reader = backendIdentityReader(r.postgresPath, pid, major);
        if ("unavailable" in reader) r.say(`pg_seccomp: warning: the server's status rows are not cross-checked with what each backend logged in as (${reader.unavailable}): code in one backend could change the role or kind another process that is not classified yet is classified as (docs/design.md, "Classification")`);
        else identity = reader;
      }
      // Contexts differ only per process: a program one of them runs is dumpable again after its
      // exec (the kernel resets it), so without Yama's relational ptrace another backend of the
      // same user can open the program's memory and run code in the program's context.
      if (r.installed && r.installed.perProcess.length > 0) {
        const scope = readYamaPtraceScope();
        if (scope === undefined || scope === 0) {
          r.say(`pg_seccomp: note: ${scope === undefined ? "this kernel has no Yama" : "kernel.yama.ptrace_scope is 0"}: a program a server process runs (COPY ... TO PROGRAM's, archive_command's) can have its memory written by another backend, and run that backend's code in the program's context; set kernel.yama.ptrace_scope = 1 (docs/deploy.md, "Kernel settings")`);
        }
      }
      const classifier = new ClassificationService(pid, monitor, r.say, needsRow, identity);
      /** Set once the worker's channel is up: asks again about provisional answers (each tick). */
      let revisitProvisional: () => void = () => undefined;
      // Contexts held by the kernel (docs/design.md): once a process is pinned, its context's
      // denials are installed *in it*, on every thread, so that nothing the process does later
      // (a thread, a new title, losing the monitor or the supervisor) gives back what they deny.
      const injected = new Map<number, string>();
      const injectedPrograms = new Map<string, Insn[] | undefined>();
      let installedRoutes: Pick<Composition, "routed" | "unknownRouted" | "perProcess"> | undefined = r.installed;
      const injectingSlots = new Int32Array(injecting);
      /** Takes a free slot for `cpid` (true), or frees its slot (false); false: no slot free now. */
      const stepSlot = (cpid: number, on: boolean): boolean => {
        for (let i = 0; i < INJECT_SLOTS; i++) {
          if (on ? Atomics.compareExchange(injectingSlots, i, 0, cpid) === 0 : Atomics.compareExchange(injectingSlots, i, cpid, 0) === cpid) return true;
        }
        return false;
      };
      const holdInKernel = (cpid: number, start: string, ctx: ContextSpec): void => {
        if (cpid === pid || injected.get(cpid) === start) return;
        if (injected.size > 65_536) injected.clear();
        const key = contextKey(ctx);
        installedRoutes ??= compose(r.policy, r.arch, { contexts: [] });
        // Every context decides alike: the installed program already holds each denial (a routed
        // one fails with ENOSYS if the supervisor is gone), so there is nothing to inject; and
        // compose routes seccomp (the injection's own call) only where contexts differ.
        if (installedRoutes.perProcess.length === 0 && !installedRoutes.unknownRouted) return;
        if (!injectedPrograms.has(key)) injectedPrograms.set(key, injectedProgram(r.policy, r.arch, ctx, installedRoutes));
        const prog = injectedPrograms.get(key);
        if (!prog) return; // the context denies nothing the supervisor decides: nothing to hold
        injected.set(cpid, start);
        const t0 = performance.now();
        let pending: PendingInjection | undefined;
        // A traced process that dies is reaped by its tracer only: hand it back to the postmaster.
        const handBack = (tries = 0) => {
          if (!pending || pending.releaseIfDead() || tries > 100) return;
          setTimeout(() => handBack(tries + 1), 50).unref();
        };
        const failed = (e: unknown) => {
          handBack();
          if (readStartTime(cpid) !== start) return; // gone: nothing to hold
          // Fail closed: a classified process whose context the kernel does not hold (a thread
          // with filters of its own makes TSYNC fail; it would not stop) does not go on.
          stats.injectFailures++;
          r.say(`pg_seccomp: error: pid ${cpid} (${ctx.context}) cannot be given its context in the kernel (${e instanceof KernelError ? e.message : String(e)}); killing it (fail closed)`);
          try {
            process.kill(cpid, "SIGKILL");
          } catch {
            /* gone */
          }
          handBack();
        };
        try {
          const p0 = performance.now();
          pending = new PendingInjection(cpid, prog, {
            log: true, allThreads: true, stillTheOne: () => readStartTime(cpid) === start,
            // Its seccomp() call, when the installed program routes seccomp, is let through (supervisor-worker.ts).
            stepping: (on) => stepSlot(cpid, on),
          });
          stats.injectMainThreadMs += performance.now() - p0;
        } catch (e) {
          return failed(e);
        }
        // Polled, never waited for: the target may be a parent waiting for its vfork child, whose
        // exec the supervisor answers only once this classification is (see PendingInjection).
        let pause = 0;
        const attempt = () => {
          let state: "waiting" | "done";
          const p0 = performance.now();
          try {
            state = pending!.poll();
          } catch (e) {
            return failed(e);
          } finally {
            stats.injectMainThreadMs += performance.now() - p0;
          }
          const ms = performance.now() - t0;
          if (state === "done") {
            stats.injections++;
            stats.injectMsTotal += ms;
            stats.injectMsMax = Math.max(stats.injectMsMax, ms);
            onNarrowed(cpid, start, ctx, "its context's filter, held by the kernel (the kernel's audit record: no arguments)");
            return;
          }
          if (ms > INJECT_STOP_MS) return failed(new Error(`it did not stop within ${INJECT_STOP_MS / 1000} s`));
          // Stepping: it only waits for a CPU to run one instruction; stopping: it may be a vfork
          // parent waiting for its child's exec.
          pause = pending!.stepping ? 1 : Math.min(Math.max(pause * 2, 1), 50);
          setTimeout(attempt, pause);
        };
        attempt();
      };
      const channel = new MessageChannel();
      // The exec gate's exception for the server's own code (src/host/server-code.ts): needs to
      // know which calls are routed for the gate alone (run passes its composition; else it is composed now).
      installedRoutes ??= compose(r.policy, r.arch, { contexts: [] });
      const serverCode = findServerCode(r.postgresPath, {
        uid: r.user?.uid ?? process.getuid?.() ?? 0,
        gids: r.userGids ?? process.getgroups?.() ?? [],
        name: r.user?.name ?? "the server's user",
      });
      for (const why of serverCode.refused) r.say(`pg_seccomp: note: not taken as the server's own code (its mapping classifies the process): ${why}`);
      const wd: SupervisorWorkerData = {
        listenerFd, policy: r.policy, stagePid: pid, clientFilter, injecting, heartbeat, heartbeatOrigin, port: channel.port2,
        execveNr: syscallNumber(r.arch, "execve")!, arch: r.arch, stop,
        serverCode: { gateOnly: execGateOnly(installedRoutes.routed), files: serverCode.files, backendType: identity?.backendTypeLayout },
      };
      // The monitoring session opens on the first question (a policy whose contexts all agree and
      // that denies nothing never needs one). Every question is answered, asynchronously; the
      // worker holds the call meanwhile (bounded by its own deadline).
      const mon = monitor;
      const answerClassified = (cpid: number, start: string, classification: Classification) => {
        // The answer first: the supervisor decides for the pinned context meanwhile (and a
        // held call the injection interrupts comes back afresh, decided in the kernel).
        if (classification.pin) remember(cpid, start, classification.ctx);
        channel.port1.postMessage({ type: "classified", pid: cpid, start, classification } satisfies WorkerAnswer);
        try {
          if (classification.pin) holdInKernel(cpid, start, classification.ctx);
        } catch (e) {
          failClosed(`the context of pid ${cpid} cannot be compiled for the kernel (${(e as Error).message})`);
        }
      };
      // A background worker answered provisionally (no row known yet) is asked about again once
      // the monitor can answer, and pinned by its row then (classification.ts, revisit).
      let revisiting = false;
      revisitProvisional = () => {
        if (revisiting || !classifier.revisitDue) return;
        revisiting = true;
        classifier.revisit(answerClassified).finally(() => (revisiting = false));
      };
      channel.port1.on("message", (m: WorkerRequest) => {
        if (m.type === "classify") {
          const t0 = performance.now();
          stats.classifications++;
          const took = () => {
            const ms = performance.now() - t0;
            stats.classifyMsTotal += ms;
            stats.classifyMsMax = Math.max(stats.classifyMsMax, ms);
          };
          classifier.classify(m.pid, m.start, m.entersCode).finally(took).then(
            (classification) => answerClassified(m.pid, m.start, classification),
            () => channel.port1.postMessage({ type: "classified", pid: m.pid, start: m.start, classification: { ctx: { context: "unclassified" }, pin: false, note: "classification failed" } } satisfies WorkerAnswer),
          );
        } else {
          stats.statementLookups++;
          const ask = mon ? mon.statement(m.pid) : Promise.resolve(undefined);
          ask.then(
            (st) => channel.port1.postMessage({ type: "statement", pid: m.pid, ...(st ?? {}) } satisfies WorkerAnswer),
            () => channel.port1.postMessage({ type: "statement", pid: m.pid } satisfies WorkerAnswer),
          );
        }
      });
      worker = new Worker(new URL("./supervisor-worker.js", import.meta.url), { workerData: wd, transferList: [channel.port2] });
      const w = worker;
      workerExited = new Promise<void>((res) => w.once("exit", () => res()));
      // The kernel's records from now on (kills of our processes, client-filter denials).
      const opened = openSeccompRecordSource(r.arch);
      records = opened.source;
      if (opened.note) r.say(`pg_seccomp: note: ${opened.note}`);
      if (records) {
        try {
          procEvents = openProcEvents();
        } catch (e) {
          r.say(`pg_seccomp: note: the kernel's process events cannot be read (${(e as Error).message}; they need CAP_NET_ADMIN and CONFIG_PROC_EVENTS): a kernel record of a server process that is gone by the time it is read (a kill) is dropped and counted, as its pid may name another process by then`);
        }
      }
      // Readable by the server's group (for the SQL view of it), writable only by us.
      log = new ViolationLog(logPath, r.logMaxBytes ?? DEFAULT_LOG_MAX_BYTES, user?.gid, undefined, user ? { uid: user.uid, gids: r.userGids ?? [user.gid], name: user.name } : undefined, r.logTo, r.logPath === undefined);
      worker.on("message", (e: WorkerEvent) => {
        if ("type" in e) {
          if (e.type === "note") r.say(e.line);
          else if (e.type === "stats") {
            stats.notifications += e.notifications;
            stats.serverCodeMappings += e.serverCodeMappings;
          }
          else if (e.type === "program") remember(e.pid, e.start, e.ctx, false, e.source !== e.pid ? e.source : undefined, undefined, e.ppid);
          else if (dataDirAbs && r.policy.clientFilter) void handleClientFilter(r, spool, e.pid, BigInt(e.id), listenerFd, new Int32Array(clientFilter), clientFilterDone, classifier, onNarrowed);
          return;
        }
        if (e.action === "launch") return;
        toServerLog(e);
        logEvent(e);
      });
      // Heartbeats both ways: a supervisor thread that stops answering (stuck, or stopped with
      // the whole launcher and then resumed) fails closed: the server is stopped.
      const beats = new Int32Array(heartbeat);
      // 0 until the worker's loop first turns: starting a worker thread on a loaded machine can
      // take seconds (and nothing runs meanwhile: the stage's exec of postgres waits for it).
      let lastTick = 0;
      let lastPinsWrite = -100;
      beatTimer = setInterval(() => {
        const tickAt = Date.now();
        // This thread itself ran late (starved or paused): the worker's silence may be ours to
        // blame; judge it on the next, punctual tick instead.
        const punctual = lastTick === 0 || tickAt - lastTick < 1000;
        lastTick = tickAt;
        const now = Math.floor((tickAt - heartbeatOrigin) / 100);
        Atomics.store(beats, 1, now);
        pollKernelRecords();
        if (classifier.changed && now - lastPinsWrite >= 10) { // once a second at most
          lastPinsWrite = now;
          try {
            writeContexts(pid, classifier.pinnedEntries());
          } catch {
            /* status then shows what it can */
          }
        }
        // A shutdown signalled to the postmaster directly (pg_ctl stop -m smart) does not wait for
        // the monitor: its connection closes after a second without questions (monitor.ts), and
        // a server shutting down refuses new ones.
        // The server's own word that it is ready ends titles as a source for processes forked
        // from then on. postmaster.pid is the server's (hostile) file, read bounded and without
        // following links (host/server-files.ts): it can only make this latch sooner (more
        // restrictive), and code that could rewrite it runs only after a client reached the
        // server, by when the monitor or this has latched it.
        const pmStatus = dataDirAbs ? readPostmasterPidFile(dataDirAbs)?.status : undefined;
        if (pmStatus === "ready") classifier.markReady();
        else if (pmStatus === "starting") classifier.markStarting();
        revisitProvisional();
        const workerBeat = Atomics.load(beats, 0);
        if (!failing && workerBeat === 0 && now * 100 > SUPERVISOR_START_MS) {
          failClosed(`the supervisor did not start within ${SUPERVISOR_START_MS / 1000} s`);
        } else if (!failing && punctual && workerBeat !== 0 && (now - (workerBeat - 1)) * 100 > SUPERVISOR_STALL_MS) {
          failClosed(`the supervisor has not answered for ${SUPERVISOR_STALL_MS / 1000} s`);
        }
      }, 250);
      watchdog = startWatchdog(process.pid, pid, r.say, { guardLauncherDeath: r.guardLauncherDeath });
      worker.on("error", (e) => {
        // Fail closed: without a supervisor the server must not go on.
        failClosed(`the supervisor failed (${e.message})`);
      });
    }
  } catch (e) {
    cleanup();
    throw e;
  }
  return {
    events,
    failure: () => failure,
    closeMonitor: () => monitor?.close(),
    workerDone: workerExited,
    async finish() {
      if (beatTimer) clearInterval(beatTimer);
      watchdog?.stop();
      monitor?.close();
      // Let the supervisor finish: events it posted before stopping are delivered before 'exit'.
      Atomics.store(new Int32Array(stop), 0, 1);
      if (worker) {
        const w = worker;
        const timer = setTimeout(() => void w.terminate(), 2000);
        await workerExited;
        clearTimeout(timer);
      }
      cleanup();
      if (process.env.PG_SECCOMP_STATS === "1") {
        process.stderr.write(JSON.stringify({ pg_seccomp_stats: { ...stats, monitorQueries: monitor?.queries ?? 0, monitorSessions: monitor?.sessions ?? 0, monitorAlarms: monitor?.alarms ?? 0 } }) + "\n");
      }
    },
  };
}

const KNOCKS_PER_SECOND = 20;
const knockTimes: number[] = [];

/**
 * Answers a set_client_filter knock from `pid` (see client-filter.ts). Runs on the main thread
 * while the worker keeps answering everything else, including the seccomp call the backend makes
 * when the filter goes in.
 */
async function handleClientFilter(
  req: SupervisionRequest, spool: ClientFilterSpool | string | undefined, pid: number, id: bigint, listenerFd: number, shared: Int32Array, done: Set<string>,
  classifier: ClassificationService, onNarrowed: (pid: number, start: string, ctx: ContextSpec, note?: string) => void,
): Promise<void> {
  const start = readStartTime(pid);
  if (start === undefined) return;
  // The answer SQL reads after the knock (client-filter.ts, clientRecordPrefix): written before
  // the knock returns, in a directory the server cannot write.
  const prefix = req.dataDir ? clientRecordPrefix(req.dataDir) : undefined;
  const record = (r: ClientFilterResult) => {
    try {
      if (prefix) writeClientResult(prefix, pid, start, r);
    } catch (e) {
      req.say(`pg_seccomp: set_client_filter from pid ${pid}: the answer for SQL cannot be written: ${(e as Error).message}`);
    }
  };
  const refuse = (errno: number, why: ClientFilterRefusal) => {
    req.say(`pg_seccomp: set_client_filter from pid ${pid} refused: ${why.message}${why.detail ? `: ${why.detail}` : ""}`);
    record({ status: "error", sqlstate: why.sqlstate, message: why.message, ...(why.hint ? { hint: why.hint } : {}), ...(why.detail ? { detail: why.detail } : {}) });
    try {
      notifSend(listenerFd, { id, error: errno });
    } catch {
      /* the caller is gone */
    }
  };
  const key = `${pid}/${start}`;
  if (done.has(key)) return refuse(114 /* EALREADY */, new ClientFilterRefusal("Client filter may only be loaded once", "0A000"));
  // Each request costs a ptrace stop and a compile: at most KNOCKS_PER_SECOND of them.
  const now = Date.now();
  while (knockTimes.length && now - knockTimes[0]! >= 1000) knockTimes.shift();
  if (knockTimes.length >= KNOCKS_PER_SECOND) return refuse(11 /* EAGAIN */, new ClientFilterRefusal("too many set_client_filter requests this second", "53400", "try again"));
  knockTimes.push(now);
  let prog;
  let rows: FilterRow[];
  let ctx: ContextSpec | undefined;
  try {
    ctx = classifier.pinned(pid) ?? (await classifier.classify(pid, start)).ctx;
    const { req: request, session } = takeClientFilterRequest(spool, pid, req.policy, ctx);
    const spec = clientFilterSpec(req.policy, session, request);
    prog = clientFilterProgram(req.policy, req.arch, spec);
    rows = effectiveFilterRows(req.policy, req.arch, [{ context: "global" }, ctx!], { client: spec }).filter((r) => r.context === "session");
  } catch (e) {
    return refuse(22 /* EINVAL */, e instanceof ClientFilterRefusal ? e : new ClientFilterRefusal("failed to load client seccomp filter", "22023", undefined, describeRequestError(e)));
  }
  Atomics.store(shared, 0, pid);
  try {
    injectSeccompFilter(pid, prog, {
      log: true, // its denials reach the violation log through the kernel's audit records
      // Every thread, or none (a thread started before the call, by code loaded into the
      // backend, would otherwise keep the session's wider rules; diverged filters: refused).
      allThreads: true,
      beforeRelease: (err) => {
        // The interrupted knock restarts when the backend is let go: its answer is set first.
        if (err) record({ status: "error", sqlstate: "58000", message: "failed to load client seccomp filter", detail: err.message });
        else {
          try {
            if (prefix) writeClientRows(prefix, pid, start, rows);
          } catch {
            /* pg_get_seccomp_filter() then shows the session's rows without the client's */
          }
          if (ctx) onNarrowed(pid, start, ctx);
          record({ status: "ok" });
        }
        Atomics.store(shared, 2, err ? err.errno || 1 : 0);
        Atomics.store(shared, 1, pid);
      },
    });
    done.add(key);
  } catch (e) {
    req.say(`pg_seccomp: set_client_filter for pid ${pid} failed: ${(e as Error).message}`);
  } finally {
    Atomics.store(shared, 0, 0);
  }
}
