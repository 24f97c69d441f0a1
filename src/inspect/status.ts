// `status`: what the kernel enforces on a running server, process by process, next to what the
// policy says it should.
//
// For the postmaster and every process below it: the backend type (from the process title),
// no_new_privs and the seccomp mode from /proc/PID/status, and, as root, the filters the kernel
// holds (read with ptrace, src/kernel/ptrace.ts). The kernel's filters are combined per syscall
// as the kernel combines stacked filters and compared, number by number, with the program `run`
// installs for the policy. A process without a filter is reported loudly: it escaped the
// launcher.
//
// Reading the filters pauses each process for an instant (a ptrace stop of well under a
// millisecond; a blocking call it was in may return EINTR, which PostgreSQL retries).
//
// The pure parts (process titles, /proc/PID/status, the stacking rule, the comparison and the
// formatting) are separate from the parts that read /proc and call the kernel, and are exported
// for tests.
//
// This file finds the server and reads the machine; status-compare.ts holds the comparison and
// status-report.ts the report. Host facts (/proc, postmaster.pid) come from src/host.

import { parseProcessTitle, TITLE_PREFIX, type ProcessTitle } from "../postgres/process-title.js";
import { statSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { type CompiledFilter } from "../bpf/emulator.js";
import { type Insn } from "../bpf/insn.js";
import { KernelError, seccompFilters } from "../kernel/index.js";
import { Classifier } from "../classify/classify.js";
import { findRunState, foreignPlace, readableRootFile, readContexts, runStatePlaces, type RunState } from "../host/run-state.js";
import { contextDecisions, contextKey, decisionFor, type ContextSpec } from "../policy/decision.js";
import { loadPolicyFile, type Policy } from "../policy/policy.js";
import { hostArch, isArch, syscallNumber, type Arch } from "../syscalls/index.js";
import { PgSeccompError } from "../errors.js";
import {
  descendants, parseProcStatus, PROC, procReader, readProcLink, readProcessTree, readProcStat, type ProcReader, type ProcStatus,
} from "../host/proc.js";
import { parsePostmasterPidFile, POSTMASTER_PID_MAX_BYTES, readPostmasterPidFile, readServerFile } from "../host/server-files.js";
import {
  type Expectation, type FilterComparison, type VerdictRow, compareFilters, expectationFor, forContext, policyRows, supervisorFor,
} from "./status-compare.js";
import { describeTitle, formatStatus, judgeProcess, statusJson, type ProcessReport, type StatusReport } from "./status-report.js";

// The comparison and the report are part of `status`'s interface (tests, the demo).
export * from "./status-compare.js";
export * from "./status-report.js";

/** A problem the user must fix in the invocation or the environment (no such server, ...). */
export class StatusError extends PgSeccompError {
  override name = "StatusError";
  constructor(message: string) {
    super("usage", message);
  }
}

// =============================================================================================
// Reading the machine

const CAP_SYS_ADMIN = 21n;

export interface StatusOptions {
  dataDir?: string;
  pid?: number;
  /** Policy to compare with; defaults to the run state's. */
  policy?: string;
  /** Include the postmaster's per-syscall table. */
  syscalls?: boolean;
  /** For tests: where /proc is (default "/proc") and where run states are. */
  procRoot?: string;
  runStateDir?: string;
  /** For tests: read the kernel's filters (default: src/kernel's seccompFilters). */
  readFilters?: (pid: number) => Insn[][];
  /** For tests: whether this process can read filters (default: from /proc/self/status). */
  kernelAccess?: { ok: true } | { ok: false; reason: string };
  /** For tests: take --pid's process tree as it is, postmaster or not (a filtered sleep stands in for one). */
  anyProcessTree?: boolean;
}

/** Whether this process may read other processes' filters, and if not, the sentence that says so. */
export function filterAccess(procRoot = "/proc"): { ok: true } | { ok: false; reason: string } {
  const self = parseProcStatus(procReader(procRoot).status("self") ?? "");
  const admin = self.capEff !== null ? (self.capEff >> CAP_SYS_ADMIN) & 1n : process.getuid?.() === 0 ? 1n : 0n;
  if (admin !== 1n) {
    return { ok: false, reason: "not root: cannot read the filters the kernel holds (needs CAP_SYS_ADMIN); showing /proc only" };
  }
  if (self.seccomp !== null && self.seccomp !== 0) {
    return {
      ok: false,
      reason: "this process runs under seccomp itself (a container?): the kernel shows filters only to an unconfined caller; showing /proc only",
    };
  }
  return { ok: true };
}

function alive(pid: number, proc: ProcReader): boolean {
  return proc.stat(pid) !== undefined;
}

function ownerUid(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch {
    return undefined;
  }
}


export interface PostmasterLocation {
  pid: number;
  foundBy: string;
  dataDir: string | null;
  runState: RunState | null;
}

/**
 * The postmaster: --pid (or, when that pid is a backend, its parent), else the first line of
 * DATADIR/postmaster.pid, else the run state `pg_seccomp run` keeps for DATADIR.
 */
export function findPostmaster(target: { pid?: number; dataDir?: string; anyProcessTree?: boolean }, procRoot = "/proc", runStateDir?: string): PostmasterLocation {
  const proc = procRoot === "/proc" ? PROC : procReader(procRoot);
  // Without root, the run state of a server run started as root is still readable in /run/pg_seccomp.
  // And that of a server started by the server's user (pg_ctl, pg_ctlcluster) in that user's
  // own directory: taken only when its files are that user's, and only with a policy file root
  // owns and anyone may read (so a forged record makes root read nothing the user could not).
  const state = (by: { pid?: number; dataDir?: string }): RunState | null => {
    if (runStateDir !== undefined) return findRunState(by, runStateDir) ?? null;
    const owner = ownerUid(by.pid !== undefined ? join(procRoot, String(by.pid)) : by.dataDir!);
    let best: RunState | null = null;
    for (const place of runStatePlaces(owner)) {
      const rs = findRunState(by, place.dir, place.owner);
      if (!rs) continue;
      if (foreignPlace(place) && !readableRootFile(rs.policyPath)) continue;
      if (!best || String(rs.startedAt) > String(best.startedAt)) best = rs; // the newest, wherever it is
    }
    return best;
  };
  if (target.pid !== undefined) {
    let pid = target.pid;
    if (!alive(pid, proc)) throw new StatusError(`no process ${pid}`);
    const title = parseProcessTitle(proc.cmdline(pid) ?? "");
    let foundBy = "--pid";
    if (title.title.startsWith(TITLE_PREFIX)) {
      // A backend: its postmaster is its parent.
      const st = readProcStat(pid, proc);
      if (st && st.ppid > 1) {
        pid = st.ppid;
        foundBy = `--pid ${target.pid} (a ${title.backendType}), its parent`;
      }
    }
    const rs = state({ pid });
    if (!rs && !target.anyProcessTree) checkIsPostmaster(pid, target.pid, procRoot);
    return { pid, foundBy, dataDir: rs?.dataDir ?? target.dataDir ?? null, runState: rs };
  }
  if (target.dataDir !== undefined) {
    const dataDir = resolve(target.dataDir);
    const file = readPostmasterPidFile(dataDir);
    const pid = file?.pid;
    if (pid !== undefined && alive(pid, proc)) return { pid, foundBy: "postmaster.pid", dataDir, runState: state({ pid }) };
    const rs = state({ dataDir });
    if (rs) return { pid: rs.postmasterPid, foundBy: "run state", dataDir, runState: rs };
    if (pid !== undefined) throw new StatusError(`${join(dataDir, "postmaster.pid")} names process ${pid}, which is not running (a stale file?)`);
    throw new StatusError(
      file === undefined
        ? `no server is running on ${dataDir}: cannot read ${join(dataDir, "postmaster.pid")} and pg_seccomp run has no record of it`
        : `${join(dataDir, "postmaster.pid")} does not start with a pid`,
    );
  }
  throw new StatusError("say which server: -D DATADIR or --pid PID");
}

/**
 * --pid must name a postmaster (or one of its children): its executable is a postgres binary and
 * the postmaster.pid in its working directory (the postmaster's cwd is its data directory) names
 * it. Anything else (PID 1, a shell) is refused: status would print its whole process tree.
 * postmaster.pid is the server's file: read without following a link, bounded (readServerFile).
 */
function checkIsPostmaster(pid: number, given: number, procRoot: string): void {
  const exe = readProcLink(pid, "exe", procRoot);
  const named = readServerFile(join(procRoot, String(pid), "cwd", "postmaster.pid"), POSTMASTER_PID_MAX_BYTES);
  const pidFile = named === undefined ? undefined : parsePostmasterPidFile(named);
  const isPostgres = exe !== undefined && /^postgres(?: \(deleted\))?$/.test(basename(exe));
  if (isPostgres && pidFile?.pid === pid) return;
  const what = exe === undefined ? "its executable cannot be read (run as root, or as the server's user)" : !isPostgres ? `it runs ${basename(exe)}, not postgres` : "no postmaster.pid in its data directory names it";
  throw new StatusError(`process ${given}${given !== pid ? ` (parent ${pid})` : ""} is not a PostgreSQL postmaster: ${what}; give the postmaster's pid (the first line of DATADIR/postmaster.pid), or -D DATADIR`);
}

function readProcess(pid: number, proc: ProcReader, postmaster: boolean): { title: ProcessTitle; status: ProcStatus; threadsDiffer: boolean } | undefined {
  const status = proc.status(pid);
  const cmdline = proc.cmdline(pid);
  if (status === undefined || cmdline === undefined) return undefined;
  const st = parseProcStatus(status);
  let threadsDiffer = false;
  if ((st.threads ?? 1) > 1) {
    for (const tid of proc.pids(pid)) {
      const t = parseProcStatus(proc.status(pid, tid) ?? "");
      if (t.seccomp !== null && (t.seccomp !== st.seccomp || t.seccompFilters !== st.seccompFilters)) threadsDiffer = true;
    }
  }
  return { title: parseProcessTitle(cmdline, { postmaster }), status: st, threadsDiffer };
}

/** The io_uring calls a policy lets through in the global context. */
function ioUringAllowed(policy: Policy, arch: Arch): string[] {
  const global = contextDecisions(policy, arch, { context: "global" });
  return ["io_uring_setup", "io_uring_enter", "io_uring_register"].filter((name) => {
    const nr = syscallNumber(arch, name);
    const d = nr === undefined ? undefined : decisionFor(global, nr);
    return d !== undefined && (d.kind !== "leaf" || d.action.kind === "allow" || d.action.kind === "log");
  });
}

/** Look at the server: find it, read /proc and (as root) the kernel's filters, compare with the policy. */
export function collectStatus(opts: StatusOptions): StatusReport {
  const procRoot = opts.procRoot ?? "/proc";
  const proc = procRoot === "/proc" ? PROC : procReader(procRoot);
  const where = findPostmaster({ pid: opts.pid, dataDir: opts.dataDir, ...(opts.anyProcessTree ? { anyProcessTree: true } : {}) }, procRoot, opts.runStateDir);
  const rs = where.runState;
  const arch: Arch = rs && isArch(rs.arch) ? rs.arch : hostArch();
  const notes: string[] = [];

  const policyPath = opts.policy ?? rs?.policyPath ?? null;
  const policyFrom = opts.policy !== undefined ? "--policy" : rs ? "run state" : null;
  let policy: Policy | null = null;
  if (policyPath !== null) policy = loadPolicyFile(policyPath);
  else notes.push("no policy to compare with: pass --policy FILE (pg_seccomp run keeps no record of this server)");
  if (policy && !policy.enabled) notes.push(`${policyPath} sets seccomp = off: run installs no filter`);
  if (policy && policy.enabled) {
    const io = ioUringAllowed(policy, arch);
    if (io.length) notes.push(`WARNING: ${policyPath} allows ${io.join(", ")}: the I/O an io_uring carries (io_method = io_uring) is not filtered per call`);
  }
  const exp = policy && policy.enabled ? expectationFor(policy, arch) : null;
  // The supervisor answers with the policy run was started with, which may not be the one compared.
  let running: Policy | null = policy;
  if (exp && rs && policyPath !== null && resolve(rs.policyPath) !== resolve(policyPath)) {
    try {
      running = loadPolicyFile(rs.policyPath);
    } catch (e) {
      notes.push(`cannot read ${rs.policyPath}, the policy the server was started with (${(e as Error).message}); assuming its supervisor answers as ${policyPath} says`);
    }
  } else if (exp && !rs) {
    notes.push(`pg_seccomp run keeps no record of this server: where the kernel hands a call to a supervisor, the answer shown is ${policyPath}'s`);
  }

  const access = opts.kernelAccess ?? (opts.readFilters ? { ok: true as const } : filterAccess(procRoot));
  const readFilters = opts.readFilters ?? ((pid: number) => seccompFilters(pid));
  const kernelVisible = access.ok;

  const tree = readProcessTree(proc);
  // Not this process itself (status run from a shell that is the given pid's child, say).
  const pids = [where.pid, ...descendants(where.pid, tree)].filter((p) => p !== process.pid);
  const processes: ProcessReport[] = [];
  let syscalls: VerdictRow[] | null = null;
  const cache = new Map<string, FilterComparison>();
  // The supervisor's own classification: what the launcher pinned (its run-state record), and
  // for anything a pinned process started, that process's context.
  // Pins are display only (the kernel's filters are what status compares), so a record in the
  // server's user's directory is read like ours.
  const launcherPins = rs ? runStatePlaces(ownerUid(join(procRoot, String(where.pid)))).map((p) => readContexts(where.pid, p.dir, p.owner)).find((c) => c !== undefined) : undefined;
  const classifier = new Classifier(where.pid, {
    cmdline: (pid) => proc.cmdline(pid),
    stat: (pid) => proc.stat(pid),
  }, rs ? new Map((launcherPins ?? []).map((p) => [p.pid, { start: p.start, ctx: p.ctx as ContextSpec }])) : undefined);
  const perContext = new Map<string, { exp: Expectation; supervisor: CompiledFilter }>();
  const contextExpectation = (ctx: ContextSpec): { exp: Expectation; supervisor: CompiledFilter } | null => {
    if (!exp || !policy) return null;
    const key = contextKey(ctx);
    let hit = perContext.get(key);
    if (!hit) {
      const e = forContext(exp, policy, ctx);
      hit = { exp: e, supervisor: running && running !== policy ? supervisorFor(running, arch, ctx) : e.supervisor };
      perContext.set(key, hit);
    }
    return hit;
  };
  for (const pid of pids) {
    const isPm = pid === where.pid;
    const info = readProcess(pid, proc, isPm);
    if (!info) continue; // ended between the scan and now
    const ctx = classifier.classify(pid);
    const ce = contextExpectation(ctx);
    let programs: Insn[][] | null = null;
    let error: string | null = null;
    let gone = false;
    if (kernelVisible) {
      try {
        programs = readFilters(pid);
      } catch (e) {
        if (e instanceof KernelError && e.code === "ESRCH" && !alive(pid, proc)) gone = true;
        else error = (e as Error).message;
      }
    }
    let comparison: FilterComparison | null = null;
    if (programs && ce) {
      const key = `${contextKey(ctx)} ${JSON.stringify(programs)}`;
      comparison = cache.get(key) ?? compareFilters(programs, ce.exp, ce.supervisor);
      cache.set(key, comparison);
    }
    if (isPm && opts.syscalls && ce) syscalls = comparison ? comparison.rows : policyRows(ce.exp);
    const base = {
      pid,
      ppid: info.status.ppid,
      backendType: info.title.backendType,
      description: describeTitle(info.title),
      context: contextKey(ctx),
      title: info.title,
      noNewPrivs: info.status.noNewPrivs,
      seccompMode: info.status.seccompMode,
      seccompFilters: info.status.seccompFilters,
      speculationStoreBypass: info.status.speculationStoreBypass,
      threadsDiffer: info.threadsDiffer,
      kernelPrograms: programs ? programs.map((p) => p.length) : null,
      comparison,
      error,
      gone,
    };
    processes.push({ ...base, ...judgeProcess(base, { kernelVisible, havePolicy: policy !== null, policyEnabled: policy?.enabled ?? true }) });
  }
  if (processes.length === 0) throw new StatusError(`process ${where.pid} ended before it could be inspected`);
  if (opts.syscalls && !exp) notes.push("--syscalls needs a policy with seccomp on");
  if (opts.syscalls && !kernelVisible) notes.push("--syscalls: the kernel_action column needs root; it shows ? here");

  return {
    postmasterPid: where.pid,
    foundBy: where.foundBy,
    dataDir: where.dataDir,
    arch,
    policyPath,
    policyFrom,
    runState: rs,
    kernelVisible,
    kernelNote: access.ok ? null : access.reason,
    notes,
    processes,
    syscalls,
    ok: processes.every((p) => p.ok),
  };
}

/**
 * The `pg_seccomp status` command: the text (or JSON) to print and the exit code: 0 when every
 * process is filtered as the policy says (as far as this user can see), 1 otherwise. Throws
 * StatusError when there is no such server, PolicyError for a bad policy.
 */
export function statusCommand(opts: StatusOptions & { json?: boolean }): { output: string; exitCode: number } {
  if ((opts.pid === undefined) === (opts.dataDir === undefined)) throw new StatusError("give exactly one of -D DATADIR and --pid PID");
  if (opts.pid !== undefined && (!Number.isInteger(opts.pid) || opts.pid <= 0)) throw new StatusError(`bad pid ${opts.pid}`);
  const report = collectStatus(opts);
  return { output: opts.json ? statusJson(report) : formatStatus(report), exitCode: report.ok ? 0 : 1 };
}

export { parseProcessTitle, type ProcessTitle };
