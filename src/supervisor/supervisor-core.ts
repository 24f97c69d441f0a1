// The supervisor's decisions, free of I/O: which context a notification's caller is in, what the
// policy says for it there, when to answer, and what to log. The worker thread
// (supervisor-worker.ts) feeds it notifications and the launcher's answers, and carries out
// what it asks through SupervisorIO; unit tests drive it with fakes.
//
// It never blocks: a call whose caller is not classified yet is *held* (the kernel keeps the
// caller waiting; every other call is answered meanwhile) until the launcher's main thread
// answers the classification request or a deadline passes, and a denied session call is held
// (briefly) for its running statement. Held calls, requests and logged events are all bounded.

import type { CompiledFilter } from "../bpf/emulator.js";
import type { SeccompData } from "../seccomp/index.js";
import type { ContextSpec } from "../policy/decision.js";
import { syscallName, syscallNumber, type Arch } from "../syscalls/index.js";
import { PROT_EXEC, SHM_EXEC } from "../compile/compose.js";
import { decide, killSignalFor, type LaunchGate, type Verdict } from "./supervisor.js";
import type { ViolationEvent } from "../host/violation-event.js";

export interface Notification {
  id: bigint;
  /** As the kernel gives it, the calling thread; onNotification turns it into the thread group (the process). */
  pid: number;
  data: SeccompData;
  /** The calling thread, when it is not the process's main thread. */
  tid?: number;
}

/** What the launcher's classifier says about a child of the postmaster. */
export interface Classification {
  ctx: ContextSpec;
  /** Final for the life of the process (pid + start time); otherwise it holds for this call only. */
  pin: boolean;
  /** Why it is not the process's own context (ambiguous, inconsistent, unknown), for the log. */
  note?: string;
  /** Not pinned, and for calls that bring no new code only: one that does asks again (classify.ts, ChildClassification). */
  provisional?: boolean;
}

export interface SupervisorIO {
  now(): number;
  /** The process (thread group id, /proc/TID/status Tgid) of a thread; undefined when it is gone. */
  threadGroup(tid: number): number | undefined;
  /** Parent pid and start time (/proc/PID/stat); undefined when the process is gone. */
  stat(pid: number): { ppid: number; start: string } | undefined;
  /** /proc/PID/status, to choose how to kill. */
  status(pid: number): string;
  /** The process title, for the log only (never for a decision). */
  title(pid: number): string;
  idValid(id: bigint): boolean;
  /** Lets the call run (continue) or fails it with an errno. */
  respond(id: bigint, answer: { continue: true } | { errno: number }): void;
  kill(pid: number, signal: "SIGSYS" | "SIGKILL" | "SIGTERM"): void;
  /**
   * Is this execve the one glibc's popen() and system() make (path "/bin/sh", argv[0] "sh")?
   * Read from the caller's memory, which it controls: used only to choose *how* a denied call
   * fails (killed, or an errno), never whether it is denied.
   */
  spawnsShell(pid: number, data: SeccompData): boolean;
  /** Asks the classifier about a child of the postmaster; the answer comes to onClassified. */
  /** entersCode: the held call that asks brings new code into `pid` itself (SupervisorCore.entersCode). */
  requestClassification(pid: number, start: string, entersCode: boolean): void;
  /** Asks for a session's running statement; the answer comes to onStatement. */
  requestStatement(pid: number): void;
  emit(event: ViolationEvent): void;
  /** A line for the launcher's own output (suppressed events, overflows). */
  note(line: string): void;
  /**
   * A program a server process runs: an execve this supervisor let through, of process `pid`
   * (start time `start`) in the context of server process `source`. The launcher then knows it
   * (the kernel's records of it are attributed: client-denials.ts).
   */
  program?(pid: number, start: string, source: number, ctx: ContextSpec): void;
  /**
   * Is this call of process `pid` an executable, read-only mapping of the server's own code
   * (plpgsql.so: src/host/server-code.ts) by a process with one thread? Asked only for calls the
   * installed program routes for the exec gate alone (execGateOnly in src/compile/compose.ts).
   */
  serverCodeMapping?(pid: number, data: SeccompData): boolean;
}

export interface SupervisorLimits {
  /** How long a call waits for its caller's classification before the most restrictive context decides it. */
  classifyWaitMs: number;
  /** How long a denied session call waits for its running statement. */
  statementWaitMs: number;
  /** Statement lookups a second. */
  statementsPerSecond: number;
  /** Statement lookups a second for one process (its flood never spends another's). */
  statementsPerSecondPerProcess: number;
  /** Calls held at once, in all (memory), and for one process (fairness); past either, that call is decided at once with what is known. */
  maxHeld: number;
  maxHeldPerProcess: number;
  /** Logged events a second from one server process (its programs included), and from all; the rest are summed into summary records. */
  eventsPerSecondPerPid: number;
  eventsPerSecond: number;
}

export const DEFAULT_LIMITS: SupervisorLimits = {
  classifyWaitMs: 1000,
  statementWaitMs: 300,
  statementsPerSecond: 20,
  statementsPerSecondPerProcess: 2,
  maxHeld: 4096,
  maxHeldPerProcess: 16,
  eventsPerSecondPerPid: 20,
  eventsPerSecond: 500,
};

interface Located {
  ctx: ContextSpec;
  /** The postmaster child whose classification decided (the caller itself, or its ancestor). */
  source: number;
  note?: string;
  /**
   * Not below the postmaster any more (reparented to init): only a server process's descendant
   * carries the installed filter, and no server process leaves its parent, so it is a program
   * that left its parent (fork, parent exits). Its origin is lost: it gets the most restrictive
   * of the unclassified context and every program context.
   */
  orphan?: boolean;
}

/** How restrictive a verdict is (the most restrictive of several decides an orphan's call). */
function severity(v: Verdict): number {
  switch (v.kind) {
    case "kill": return 4;
    case "terminate": return 3;
    case "error": return 2;
    default: return v.action === "log" ? 1 : 0;
  }
}

interface Held {
  n: Notification;
  until: number;
  /** Waiting for the classification of this postmaster child. */
  classify?: number;
  /** Decided, waiting for the statement of this backend. */
  statement?: { located: Located; verdict: Verdict };
}

const UNCLASSIFIED: ContextSpec = { context: "unclassified" };
/** The parents whose programs may have program lists (programContextFor). */
const ORPHAN_PARENTS: readonly ContextSpec[] = [{ context: "session" }, { context: "archiver" }, { context: "startup" }];

/** The contexts whose process is a session's, which terminate ends with SIGTERM. */
function endsSession(ctx: ContextSpec): boolean {
  return ctx.context === "session" || ctx.context === "parallel_worker";
}
const MAX_ANCESTRY = 32;
/** The calls that can bring new code into their own process (SupervisorCore.entersCode). */
const CODE_CALLS = ["mmap", "mprotect", "pkey_mprotect", "shmat", "execve", "execveat"] as const;
/** Kinds of (process, syscall, action) summed at once; more are counted in one line of the launcher's output. */
const MAX_SUMMARY_KINDS = 10_000;

export class SupervisorCore {
  private readonly pins = new Map<number, { start: string; ctx: ContextSpec }>();
  /** Classifications asked for and not yet answered: pid → start. */
  private readonly asked = new Map<number, string>();
  private readonly held = new Map<bigint, Held>();
  /** Calls held per process (the thread group whose calls they are). */
  private readonly heldPer = new Map<number, number>();
  private statementTimes: number[] = [];
  private readonly statementTimesPer = new Map<number, number[]>();
  private readonly eventBuckets = new Map<number, { second: number; count: number }>();
  private globalEvents = { second: 0, count: 0 };
  /**
   * Events the buckets held back, summed per (process, syscall, action) and written as summary
   * records once a second: nothing the policy logs is hidden, a flood costs one record per kind.
   */
  private readonly suppressed = new Map<string, { event: ViolationEvent; count: number }>();
  private suppressedOther = 0;
  private suppressedSince = 0;
  /** (context, syscall, action) kinds already emitted (bounded; see finish). */
  private readonly reported = new Set<string>();
  /** Server processes and their descendants whose execve was let through: pid → start. */
  private readonly execd = new Map<number, string>();
  /**
   * The context of a program (a process that has exec'd, or a descendant of one) from its
   * parent's (src/classify/classify.ts, programContextFor); undefined: the parent's.
   */
  programContext?: (parent: ContextSpec) => ContextSpec | undefined;
  /** Calls routed for the exec gate alone (execGateOnly): every context decides them alike. */
  gateOnly: ReadonlySet<number> = new Set();
  /** Exec-gate calls answered without classifying their caller: they mapped the server's own code. */
  serverCodeMappings = 0;

  constructor(
    private readonly postmasterPid: number,
    private readonly decisionsFor: (ctx: ContextSpec) => CompiledFilter,
    private readonly gate: LaunchGate,
    private readonly arch: Arch,
    private readonly io: SupervisorIO,
    private readonly limits: SupervisorLimits = DEFAULT_LIMITS,
  ) {}

  /** Calls held now (for tests and the watchdog's report). */
  get heldCount(): number {
    return this.held.size;
  }

  onNotification(raw: Notification): void {
    if (this.gate.pending && raw.pid === this.gate.stagePid && raw.data.nr === this.gate.execveNr) {
      this.gate.pending = false;
      this.respond(raw, { continue: true });
      return;
    }
    // The kernel names the calling thread. A thread is its process: a thread made with
    // CLONE_THREAD but without CLONE_FILES has the postmaster as its parent (as its process
    // does) and a file table of its own; keyed by thread it would be a "child of the
    // postmaster" classified afresh. What was read is about this call only while it is pending.
    const tgid = this.io.threadGroup(raw.pid);
    if (tgid === undefined || !this.io.idValid(raw.id)) return; // the thread is gone, its call with it
    const n: Notification = tgid === raw.pid ? raw : { ...raw, pid: tgid, tid: raw.pid };
    const where = this.locate(n.pid);
    if ("waitFor" in where && this.mapsServerCode(n)) {
      // The exec gate classifies a process before code that is not the server's enters it; the
      // server's own PL/pgSQL handler is not such code (src/host/server-code.ts), and every
      // context answers this call alike: it runs, and the process stays unclassified until a
      // call its context decides.
      this.serverCodeMappings++;
      this.respond(n, { continue: true });
      return;
    }
    if ("waitFor" in where && this.mayHold(n.pid)) {
      if (this.asked.get(where.waitFor) !== where.start) {
        this.asked.set(where.waitFor, where.start);
        this.io.requestClassification(where.waitFor, where.start, where.waitFor === n.pid && this.entersCode(n));
      }
      this.hold(n, { n, until: this.io.now() + this.limits.classifyWaitMs, classify: where.waitFor });
      return;
    }
    const located: Located = "ctx" in where ? where : { ctx: UNCLASSIFIED, source: n.pid, note: "too many calls of this process waiting for classification" };
    this.decideAndAnswer(n, located);
  }

  /**
   * An exec-gate call mapping the server's own code, which every context allows without a log
   * record: the policy's own answer (the unclassified context's, which is every context's for a
   * call routed for the gate alone) must be a quiet allow. The /proc reads are about this call's
   * process only while it is pending: checked last.
   */
  private mapsServerCode(n: Notification): boolean {
    if (!this.gateOnly.has(n.data.nr) || !this.io.serverCodeMapping) return false;
    const v = decide(this.decisionsFor(UNCLASSIFIED), n.data, n.pid, this.gate);
    if (v.kind !== "continue" || v.action !== "allow") return false;
    return this.io.serverCodeMapping(n.pid, n.data) && this.io.idValid(n.id);
  }

  /** Room to hold one more call of process `pid`: within its own share, and within the total. */
  private mayHold(pid: number): boolean {
    return this.held.size < this.limits.maxHeld && (this.heldPer.get(pid) ?? 0) < this.limits.maxHeldPerProcess;
  }

  private hold(n: Notification, h: Held): void {
    this.held.set(n.id, h);
    this.heldPer.set(n.pid, (this.heldPer.get(n.pid) ?? 0) + 1);
  }

  private release(id: bigint, h: Held): void {
    this.held.delete(id);
    const c = (this.heldPer.get(h.n.pid) ?? 1) - 1;
    if (c <= 0) this.heldPer.delete(h.n.pid);
    else this.heldPer.set(h.n.pid, c);
  }

  /**
   * Does call `n` bring new code into its own process: an executable mapping (the exec gate's
   * calls, compile/compose.ts withExecGate) or an exec?
   */
  private entersCode(n: Notification): boolean {
    const nr = n.data.nr;
    const flags = n.data.args[2] ?? 0n;
    if (nr === this.codeCalls.mmap || nr === this.codeCalls.mprotect || nr === this.codeCalls.pkey_mprotect) return (flags & PROT_EXEC) !== 0n;
    if (nr === this.codeCalls.shmat) return (flags & SHM_EXEC) !== 0n;
    return nr === this.codeCalls.execve || nr === this.codeCalls.execveat;
  }

  private codeCallNumbers: Record<(typeof CODE_CALLS)[number], number> | undefined;
  private get codeCalls(): Record<(typeof CODE_CALLS)[number], number> {
    return (this.codeCallNumbers ??= Object.fromEntries(CODE_CALLS.map((name) => [name, syscallNumber(this.arch, name) ?? -1])) as Record<(typeof CODE_CALLS)[number], number>);
  }

  /** The classifier's answer about a postmaster child. */
  onClassified(pid: number, start: string, c: Classification): void {
    if (this.asked.get(pid) === start) this.asked.delete(pid);
    if (c.pin) this.pins.set(pid, { start, ctx: c.ctx });
    let askAgain = false;
    for (const [id, h] of this.held) {
      if (h.classify !== pid) continue;
      // A provisional answer is not for a call that brings code into the process: it stays held
      // and that call asks again, as such (it pins then).
      if (c.provisional && h.n.pid === pid && this.entersCode(h.n)) {
        askAgain = true;
        continue;
      }
      this.release(id, h);
      this.decideAndAnswer(h.n, { ctx: c.ctx, source: pid, ...(c.note ? { note: c.note } : {}) });
    }
    if (askAgain && this.asked.get(pid) !== start) {
      this.asked.set(pid, start);
      this.io.requestClassification(pid, start, true);
    }
  }

  /**
   * A backend's running statement (undefined: could not be had), and its role and database,
   * which the log shows when the context was decided without them.
   */
  onStatement(pid: number, query: string | undefined, role?: string, database?: string): void {
    for (const [id, h] of this.held) {
      if (!h.statement || h.statement.located.source !== pid) continue;
      this.release(id, h);
      this.finish(h.n, h.statement.located, h.statement.verdict, query, { role, database });
    }
  }

  /** Forgets a process that exited (its pin would otherwise be checked against a reused pid anyway). */
  forget(pid: number): void {
    this.pins.delete(pid);
    this.execd.delete(pid);
    this.asked.delete(pid);
    this.statementTimesPer.delete(pid);
  }

  /** Answers calls whose wait is over; call it often (every loop turn). */
  tick(): void {
    const now = this.io.now();
    for (const [id, h] of this.held) {
      if (h.until > now) continue;
      this.release(id, h);
      if (h.statement) this.finish(h.n, h.statement.located, h.statement.verdict, undefined);
      else this.decideAndAnswer(h.n, { ctx: UNCLASSIFIED, source: h.n.pid, note: "not classified in time" });
    }
    if (this.pins.size > 65_536) this.prunePins();
    if ((this.suppressed.size > 0 || this.suppressedOther > 0) && now - this.suppressedSince >= 1000) this.flushSuppressed(now);
  }

  /** At the end (the server stopped, the loop ends): what the buckets still hold goes out now, not a second later. */
  flushSummaries(): void {
    if (this.suppressed.size > 0 || this.suppressedOther > 0) this.flushSuppressed(this.io.now());
  }

  /** One summary record per (process, syscall, action) the buckets held back: the last event of its kind, with the count. */
  private flushSuppressed(now: number): void {
    const seconds = Math.max(1, Math.round((now - this.suppressedSince) / 1000));
    for (const { event, count } of this.suppressed.values()) {
      this.io.emit({ ...event, time: new Date(now).toISOString(), count, note: `${count} calls like this in ${seconds} s, summed (rate limit)${event.note ? `; ${event.note}` : ""}` });
    }
    if (this.suppressedOther > 0) {
      this.io.note(`pg_seccomp: ${this.suppressedOther} violation-log events of more than ${MAX_SUMMARY_KINDS} kinds summed in the last ${seconds} s (rate limit); the kinds above were written as summaries`);
    }
    this.suppressed.clear();
    this.suppressedOther = 0;
  }

  /**
   * The caller's context from what the kernel says about it: the postmaster is the pid the
   * launcher exec'd; a child of the postmaster has the context the classifier pinned for it;
   * anything else has its nearest postmaster-child ancestor's context (a program COPY ran, a
   * shell), whatever it calls itself. With CLONE_PARENT refused in the kernel (src/compile/compose.ts), only
   * the postmaster creates children of the postmaster.
   */
  private locate(pid: number): Located | { waitFor: number; start: string } {
    if (pid === this.postmasterPid) return { ctx: { context: "postmaster" }, source: pid };
    let cur = pid;
    for (let depth = 0; depth < MAX_ANCESTRY; depth++) {
      const st = this.io.stat(cur);
      if (!st) return { ctx: UNCLASSIFIED, source: pid, note: "process gone" };
      const pin = this.pins.get(cur);
      if (pin && pin.start === st.start) return { ctx: pin.ctx, source: cur };
      if (st.ppid === this.postmasterPid) return { waitFor: cur, start: st.start };
      if (st.ppid <= 1) break; // reparented: its server ancestor is gone
      cur = st.ppid;
    }
    return { ctx: UNCLASSIFIED, source: pid, note: "not a descendant of the postmaster any more (a program that left its parent): the most restrictive of the unclassified and program contexts", orphan: true };
  }

  private decideAndAnswer(n: Notification, found: Located): void {
    const program = this.programContext && this.ranProgram(n.pid, found.source) ? this.programContext(found.ctx) : undefined;
    const located: Located = program ? { ...found, ctx: program } : found;
    let verdict: Verdict;
    try {
      verdict = decide(this.decisionsFor(located.ctx), n.data, n.pid, this.gate);
      if (located.orphan && this.programContext) {
        // A program's lists may deny what no process context does (program_syscall_error.session = 'socket').
        for (const parent of ORPHAN_PARENTS) {
          const ctx = this.programContext(parent);
          if (!ctx) continue;
          const v = decide(this.decisionsFor(ctx), n.data, n.pid, this.gate);
          if (severity(v) > severity(verdict)) verdict = v;
        }
      }
    } catch (e) {
      // Fail closed for this call; the worker reports the error.
      this.respond(n, { errno: 1 });
      throw e;
    }
    const denied = verdict.kind !== "continue";
    const session = located.ctx.context === "session" || located.ctx.context === "parallel_worker" || located.ctx.context === "session_program";
    if (denied && session && this.mayHold(n.pid) && this.mayLookUpStatement(located.source)) {
      this.hold(n, { n, until: this.io.now() + this.limits.statementWaitMs, statement: { located, verdict } });
      this.io.requestStatement(located.source);
      return;
    }
    this.finish(n, located, verdict, undefined);
  }

  /**
   * Has `pid`, or an ancestor of it below the server process `source` (inclusive), exec'd? A
   * program and everything it starts (sh -c's zstd, before its own exec) run a program's code.
   * An exec let through that then failed leaves a process marked that runs its parent's code;
   * such a process could have run any program instead, so it gains nothing.
   */
  private ranProgram(pid: number, source: number): boolean {
    let cur = pid;
    for (let depth = 0; depth < MAX_ANCESTRY; depth++) {
      const st = this.io.stat(cur);
      if (!st) return false;
      if (this.execd.get(cur) === st.start) return true;
      if (cur === source || st.ppid <= 1 || cur === this.postmasterPid) return false;
      cur = st.ppid;
    }
    return false;
  }

  /** Within the process's own share of statement lookups, and within the total. */
  private mayLookUpStatement(pid: number): boolean {
    const now = this.io.now();
    this.statementTimes = this.statementTimes.filter((t) => now - t < 1000);
    const mine = (this.statementTimesPer.get(pid) ?? []).filter((t) => now - t < 1000);
    if (this.statementTimes.length >= this.limits.statementsPerSecond || mine.length >= this.limits.statementsPerSecondPerProcess) {
      this.statementTimesPer.set(pid, mine);
      return false;
    }
    if (this.statementTimesPer.size > 4096) this.statementTimesPer.clear();
    this.statementTimes.push(now);
    mine.push(now);
    this.statementTimesPer.set(pid, mine);
    return true;
  }

  private finish(n: Notification, located: Located, verdict: Verdict, query: string | undefined, names: { role?: string | undefined; database?: string | undefined } = {}): void {
    const quiet = verdict.kind === "continue" && verdict.action === "allow";
    const title = quiet ? "" : this.io.title(n.pid);
    const killSpawn = this.killsSpawnedShell(n, located, verdict);
    const status = verdict.kind === "kill" || killSpawn ? this.io.status(n.pid) : "";
    // What was read from /proc is about this call's process only while the call is pending.
    if (!this.io.idValid(n.id)) return;
    let signal: "SIGSYS" | "SIGKILL" | "SIGTERM" | undefined;
    let terminated: number | undefined;
    if (verdict.kind === "continue") {
      if (n.data.nr === this.gate.execveNr && this.programContext) {
        // From its exec on, this process runs a program (programContextFor).
        const st = this.io.stat(n.pid);
        if (st) {
          if (this.execd.size > 65_536) this.execd.clear();
          this.execd.set(n.pid, st.start);
        }
      }
      this.respond(n, { continue: true });
    }
    else if (verdict.kind === "error" && !killSpawn) this.respond(n, { errno: verdict.errno });
    else if (verdict.kind === "terminate") {
      // The call fails first; then the session's backend (the caller, or the backend whose
      // program made the call) gets SIGTERM, as from pg_terminate_backend: it ends its
      // transaction and exits normally, and the postmaster restarts nothing. Other contexts
      // have no session to end (SIGTERM would stop an auxiliary process, or the server): the errno alone.
      this.respond(n, { errno: verdict.errno });
      if (endsSession(located.ctx)) {
        signal = "SIGTERM";
        terminated = located.source;
        this.io.kill(located.source, "SIGTERM");
      }
    }
    else {
      signal = killSignalFor(status);
      this.io.kill(n.pid, signal);
      this.respond(n, { errno: 38 /* ENOSYS, if it somehow survives */ });
    }
    const ctx = located.ctx;
    // The first event of a (context, syscall, action) is never rate-limited: learning and
    // `learn --verify` must see every kind of call at least once.
    const kind = `${ctx.context}\0${ctx.role ?? ""}\0${ctx.database ?? ""}\0${n.data.nr}\0${verdict.action}`;
    const first = !quiet && !this.reported.has(kind);
    if (first) {
      if (this.reported.size >= 65_536) this.reported.clear();
      this.reported.add(kind);
    }
    if (verdict.kind === "continue" && n.data.nr === this.gate.execveNr && this.io.program) {
      const st = this.io.stat(n.pid);
      if (st) this.io.program(n.pid, st.start, located.source, ctx);
    }
    if (quiet) return;
    // Per server process: a program a backend runs (every COPY ... TO PROGRAM, every popen is a
    // new pid) counts against that backend, or a session could outrun its own bucket by forking.
    const within = this.mayEmit(located.source);
    const event: ViolationEvent = {
      time: new Date(this.io.now()).toISOString(),
      pid: n.pid,
      process: title,
      syscall: syscallName(this.arch, n.data.nr) ?? `#${n.data.nr}`,
      nr: n.data.nr,
      args: n.data.args.map((a) => "0x" + a.toString(16)),
      context: ctx.context,
      ...(located.source !== n.pid ? { decidedBy: located.source } : {}),
      ...(ctx.role !== undefined ? { role: ctx.role } : names.role !== undefined ? { role: names.role } : {}),
      ...(ctx.database !== undefined ? { database: ctx.database } : names.database !== undefined ? { database: names.database } : {}),
      ...(query !== undefined ? { query } : {}),
      ...(located.note ? { note: located.note } : {}),
      action: verdict.action,
      ...(verdict.kind === "error" || verdict.kind === "terminate" ? { errno: verdict.errno } : {}),
      ...(signal ? { signal } : {}),
      ...(terminated !== undefined && terminated !== n.pid ? { terminated } : {}),
    };
    if (first || within) this.io.emit(event);
    else this.suppress(event);
  }

  private suppress(e: ViolationEvent): void {
    if (this.suppressed.size === 0 && this.suppressedOther === 0) this.suppressedSince = this.io.now();
    // Keyed by the process whose context decided (a program it started counts as it: a flood of
    // COPY ... TO PROGRAM is one kind, not one per short-lived child).
    const key = `${e.decidedBy ?? e.pid}\0${e.nr}\0${e.action}`;
    const s = this.suppressed.get(key);
    if (s) {
      s.count++;
      s.event = e;
    } else if (this.suppressed.size < MAX_SUMMARY_KINDS) this.suppressed.set(key, { event: e, count: 1 });
    else this.suppressedOther++;
  }

  /**
   * A denied execve of the shell glibc's popen() or system() spawns (COPY ... TO PROGRAM,
   * archive_command, a PL's os.system) kills that child instead of failing the call: popen turns
   * any posix_spawn error into ENOMEM ("could not execute command ...: Cannot allocate memory")
   * and system into exit code 127, so no errno reaches the user. A killed child is reported by
   * PostgreSQL as "terminated by signal 31: Bad system call". Only a program a server process
   * started (never the server process itself) is killed, and only when the call is denied anyway.
   */
  private killsSpawnedShell(n: Notification, located: Located, verdict: Verdict): boolean {
    if (verdict.kind !== "error" || n.data.nr !== this.gate.execveNr || located.source === n.pid) return false;
    return this.io.spawnsShell(n.pid, n.data);
  }

  private respond(n: Notification, answer: { continue: true } | { errno: number }): void {
    this.io.respond(n.id, answer);
  }

  /**
   * Token buckets: one server process (with the programs it runs) hammering a denied call cannot
   * flood the log or the launcher. `pid` is the postmaster child that decided the call.
   */
  private mayEmit(pid: number): boolean {
    const second = Math.floor(this.io.now() / 1000);
    const b = this.eventBuckets.get(pid);
    const bucket = b && b.second === second ? b : { second, count: 0 };
    if (this.eventBuckets.size > 4096) this.eventBuckets.clear();
    this.eventBuckets.set(pid, bucket);
    if (this.globalEvents.second !== second) this.globalEvents = { second, count: 0 };
    if (bucket.count >= this.limits.eventsPerSecondPerPid || this.globalEvents.count >= this.limits.eventsPerSecond) {
      if (this.suppressed.size === 0 && this.suppressedOther === 0) {
        this.io.note(`pg_seccomp: violation-log rate limit reached (pid ${pid}); further events are summed per process, syscall and action`);
      }
      return false;
    }
    bucket.count++;
    this.globalEvents.count++;
    return true;
  }

  private prunePins(): void {
    for (const [pid, pin] of this.pins) {
      const st = this.io.stat(pid);
      if (!st || st.start !== pin.start) this.pins.delete(pid);
    }
  }
}

