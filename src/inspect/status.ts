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

import { parseProcessTitle, TITLE_PREFIX, type ProcessTitle } from "../postgres/process-title.js";
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { compileFilter, type CompiledFilter } from "../bpf/emulator.js";
import { type Insn } from "../bpf/insn.js";
import {
  AUDIT_ARCH, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, X32_SYSCALL_BIT, describeSeccompRet, retData, seccompActionOf,
  stackedRet, type SeccompData,
} from "../seccomp/index.js";
import { KernelError, seccompFilters } from "../kernel/index.js";
import { Classifier } from "../launcher/classify.js";
import { decisionProgram, kernelPrograms, type KernelPrograms } from "../launcher/program.js";
import { readServerFile } from "../launcher/data-dir.js";
import { findRunState, readableRootFile, readContexts, runStatePlaces, type RunState } from "../launcher/state.js";
import { contextDecisions, contextKey, decisionFor, type ContextSpec } from "../policy/decision.js";
import { loadPolicyFile, type Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { allSyscalls, hostArch, isArch, maxSyscallNumber, syscallNumber, type Arch } from "../syscalls/index.js";
import { psqlTable, type Cell } from "./format.js";
import { PgSeccompError } from "../errors.js";

/** A problem the user must fix in the invocation or the environment (no such server, ...). */
export class StatusError extends PgSeccompError {
  override name = "StatusError";
  constructor(message: string) {
    super("usage", message);
  }
}

// =============================================================================================

/** "client backend alice@app [local] idle", "checkpointer", "background worker pg_cron launcher". */
export function describeTitle(t: ProcessTitle): string {
  switch (t.backendType) {
    case "client backend":
    case "walsender":
      return `${t.backendType} ${t.role ?? "?"}${t.database !== undefined ? `@${t.database}` : ""} ${t.client ?? ""}${t.activity ? ` ${t.activity}` : ""}`.trimEnd();
    case "parallel worker":
      return `parallel worker for PID ${t.leaderPid}`;
    case "background worker":
    case "other":
      return `${t.backendType} ${t.backendType === "other" ? t.title : t.name ?? ""}`.trimEnd();
    default:
      return t.backendType;
  }
}

// =============================================================================================
// /proc/PID/status and /proc/PID/stat

export type SeccompModeName = "disabled" | "strict" | "filter";

export interface ProcStatus {
  name: string | null;
  ppid: number | null;
  /** Real uid. */
  uid: number | null;
  threads: number | null;
  noNewPrivs: boolean | null;
  /** The Seccomp: field: 0, 1 or 2. */
  seccomp: number | null;
  seccompMode: SeccompModeName | null;
  /** Seccomp_filters: (Linux 5.9+): how many filters the thread has. */
  seccompFilters: number | null;
  /** Speculation_Store_Bypass: e.g. "thread force mitigated" (seccomp's default), "thread vulnerable". */
  speculationStoreBypass: string | null;
  /** CapEff as a bigint mask. */
  capEff: bigint | null;
}

export function seccompModeName(n: number): SeccompModeName | null {
  return n === 0 ? "disabled" : n === 1 ? "strict" : n === 2 ? "filter" : null;
}

/** Parse /proc/PID/status (or /proc/PID/task/TID/status). Missing fields are null. */
export function parseProcStatus(text: string): ProcStatus {
  const f = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) f.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const int = (k: string): number | null => {
    const v = f.get(k);
    return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : null;
  };
  const seccomp = int("Seccomp");
  const nnp = int("NoNewPrivs");
  const uid = f.get("Uid")?.split(/\s+/)[0];
  const cap = f.get("CapEff");
  return {
    name: f.get("Name") ?? null,
    ppid: int("PPid"),
    uid: uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : null,
    threads: int("Threads"),
    noNewPrivs: nnp === null ? null : nnp === 1,
    seccomp,
    seccompMode: seccomp === null ? null : seccompModeName(seccomp),
    seccompFilters: int("Seccomp_filters"),
    speculationStoreBypass: f.get("Speculation_Store_Bypass") ?? null,
    capEff: cap !== undefined && /^[0-9a-f]+$/i.test(cap) ? BigInt(`0x${cap}`) : null,
  };
}

/** pid, comm, state and ppid from /proc/PID/stat (comm may hold spaces and parentheses). */
export function parseProcStat(text: string): { pid: number; comm: string; state: string; ppid: number } | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const rest = text.slice(close + 2).split(" ");
  const pid = Number(text.slice(0, open).trim());
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || rest[0] === undefined) return undefined;
  return { pid, comm: text.slice(open + 1, close), state: rest[0], ppid };
}

/** The first line of postmaster.pid: the postmaster's pid. */
export function parsePostmasterPid(text: string): number | undefined {
  const first = text.split("\n")[0]?.trim() ?? "";
  return /^\d+$/.test(first) && Number(first) > 0 ? Number(first) : undefined;
}

/** The pids below `root` (children, grandchildren, ...), parents before children, given pid -> ppid. */
export function descendants(root: number, parentOf: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentOf) {
    if (pid === root) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  const seen = new Set([root]);
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of (children.get(p) ?? []).sort((a, b) => a - b)) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

// =============================================================================================
// Stacked filters and the comparison

const CAP_SYS_ADMIN = 21n;

/** One seccomp_data a comparison evaluates: a syscall of the table, or an edge case. */
export interface Probe {
  syscall: string;
  syscallnum: number;
  data: SeccompData;
}

const ZERO_ARGS: readonly bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];

/**
 * Every number of the arch's table with zero arguments, then three edge cases: the first number
 * past the table, and a foreign ABI (x86_64: an x32 call and an i386 call; aarch64: an arm call).
 */
export function probesFor(arch: Arch): Probe[] {
  const native = AUDIT_ARCH[arch];
  const data = (nr: number, a = native): SeccompData => ({ nr, arch: a, instructionPointer: 0n, args: ZERO_ARGS });
  const probes: Probe[] = allSyscalls(arch).map((s) => ({ syscall: s.name, syscallnum: s.nr, data: data(s.nr) }));
  const past = maxSyscallNumber(arch) + 1;
  probes.push({ syscall: `<unknown ${past}>`, syscallnum: past, data: data(past) });
  if (arch === "x86_64") {
    probes.push({ syscall: "<x32 read>", syscallnum: X32_SYSCALL_BIT, data: data(X32_SYSCALL_BIT) });
    probes.push({ syscall: "<i386 restart_syscall>", syscallnum: 0, data: data(0, AUDIT_ARCH_I386) });
  } else {
    probes.push({ syscall: "<arm restart_syscall>", syscallnum: 0, data: data(0, AUDIT_ARCH_ARM) });
  }
  return probes;
}

/**
 * A return value in the policy's words: "allow", "log", "error:EACCES", "trap", "kill", and for
 * what a policy cannot say "kill_thread", "user_notif", "trace(n)", "UNKNOWN(0x...)".
 */
export function describeRetInPolicyTerms(ret: number): string {
  const data = retData(ret);
  switch (seccompActionOf(ret)?.name) {
    case "ALLOW":
      return "allow";
    case "LOG":
      return "log";
    case "ERRNO":
      return `error:${errnoName(data)}`;
    case "TRAP":
      return data ? `trap(${data})` : "trap";
    case "KILL_PROCESS":
      return "kill";
    case "KILL_THREAD":
      return "kill_thread";
    case "USER_NOTIF":
      return "user_notif";
    case "TRACE":
      return `trace(${data})`;
    case undefined:
      return describeSeccompRet(ret);
  }
}

const isNotif = (ret: number): boolean => seccompActionOf(ret)?.name === "USER_NOTIF";

/**
 * describeRetInPolicyTerms, except that USER_NOTIF says what the supervisor answers:
 * "error:EACCES (supervisor)". The supervisor (src/launcher/supervisor.ts) cannot trap a process
 * from the outside, so where the policy's program traps, it kills.
 */
export function describeVerdict(ret: number, data: SeccompData, supervisor: CompiledFilter | undefined): string {
  if (isNotif(ret) && supervisor) {
    const answer = supervisor(data).ret;
    const action = seccompActionOf(answer)?.name;
    const killed = action === "TRAP" || action === "KILL_THREAD" || action === "KILL_PROCESS";
    return `${killed ? "kill" : describeRetInPolicyTerms(answer)} (supervisor)`;
  }
  return describeRetInPolicyTerms(ret);
}

function compileTrusted(prog: readonly Insn[]): CompiledFilter {
  try {
    return compileFilter(prog);
  } catch {
    // The kernel accepted it, so it is valid by the kernel's rules; run it as it is.
    return compileFilter(prog, { skipValidation: true });
  }
}

export interface VerdictRow {
  syscall: string;
  syscallnum: number;
  /** The combined verdict of the kernel's filters (null when they could not be read). */
  kernel_action: string | null;
  policy_action: string;
  kernelRet: number | null;
  policyRet: number;
  differs: boolean;
}

export interface FilterComparison {
  /** How many seccomp_data were evaluated. */
  checked: number;
  /** Filters the kernel holds. */
  programs: number;
  /** Index (0 = newest) of a kernel program identical, instruction for instruction, to the expected one; null if none. */
  identicalProgram: number | null;
  matches: boolean;
  differences: VerdictRow[];
  rows: VerdictRow[];
}

/** What `run` installs for a policy, and what its supervisor answers for one process context. */
export interface Expectation {
  arch: Arch;
  /** The process context the supervisor's answers are for (global unless given). */
  context: ContextSpec;
  /** The one program run installs in the postmaster (every process inherits it). */
  programs: KernelPrograms;
  probes: Probe[];
  /** The policy's own program for `context`: how the supervisor answers a USER_NOTIF verdict. */
  supervisor: CompiledFilter;
  expectedRets: number[];
}

export function expectationFor(policy: Policy, arch: Arch, context: ContextSpec = { context: "global" }): Expectation {
  const programs = kernelPrograms(policy, arch, { context: "global" });
  const installed = compileTrusted(programs.installed);
  const probes = probesFor(arch);
  return { arch, context, programs, probes, supervisor: supervisorFor(policy, arch, context), expectedRets: probes.map((p) => installed(p.data).ret) };
}

/** The same expectation with the supervisor's answers for another process context. */
export function forContext(exp: Expectation, policy: Policy, context: ContextSpec): Expectation {
  return { ...exp, context, supervisor: supervisorFor(policy, exp.arch, context) };
}

/** The program the supervisor runs for a process of `context` (src/launcher/supervisor.ts). */
export function supervisorFor(policy: Policy, arch: Arch, context: ContextSpec): CompiledFilter {
  return compileTrusted(decisionProgram(policy, arch, context));
}

/** The kernel's verdict for every probe: each program run, the results combined as the kernel does. */
export function stackedVerdicts(kernel: readonly (readonly Insn[])[], probes: readonly Probe[]): number[] {
  const filters = kernel.map(compileTrusted);
  return probes.map((p) => stackedRet(filters.map((f) => f(p.data).ret)));
}

function sameProgram(a: readonly Insn[], b: readonly Insn[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]!;
    return x.code === y.code && x.jt === y.jt && x.jf === y.jf && x.k >>> 0 === y.k >>> 0;
  });
}

/**
 * Compare the filters the kernel holds (index 0 = newest) with what the policy installs.
 * `supervisor` is the program the running supervisor answers notifications with (the policy
 * `run` was started with); by default, the compared policy's own. A syscall differs when the
 * kernel's verdict differs, or when both go to the supervisor and its answer differs.
 */
export function compareFilters(kernel: readonly (readonly Insn[])[], exp: Expectation, supervisor: CompiledFilter = exp.supervisor): FilterComparison {
  const got = stackedVerdicts(kernel, exp.probes);
  const rows = exp.probes.map((p, i): VerdictRow => {
    const k = got[i]!;
    const e = exp.expectedRets[i]!;
    const kernelAction = describeVerdict(k, p.data, supervisor);
    const policyAction = describeVerdict(e, p.data, exp.supervisor);
    return {
      syscall: p.syscall,
      syscallnum: p.syscallnum,
      kernel_action: kernelAction,
      policy_action: policyAction,
      kernelRet: k,
      policyRet: e,
      differs: k !== e || (isNotif(k) && supervisor(p.data).ret !== exp.supervisor(p.data).ret),
    };
  });
  const differences = rows.filter((r) => r.differs);
  const identical = kernel.findIndex((p) => sameProgram(p, exp.programs.installed));
  return {
    checked: rows.length,
    programs: kernel.length,
    identicalProgram: identical < 0 ? null : identical,
    matches: kernel.length > 0 && differences.length === 0,
    differences,
    rows,
  };
}

/** The policy's side alone (when the kernel's filters cannot be read). */
export function policyRows(exp: Expectation): VerdictRow[] {
  return exp.probes.map((p, i) => ({
    syscall: p.syscall,
    syscallnum: p.syscallnum,
    kernel_action: null,
    policy_action: describeVerdict(exp.expectedRets[i]!, p.data, exp.supervisor),
    kernelRet: null,
    policyRet: exp.expectedRets[i]!,
    differs: false,
  }));
}

// =============================================================================================
// The report

export interface ProcessReport {
  pid: number;
  ppid: number | null;
  /** "postmaster", "client backend", ... (see ProcessTitle). */
  backendType: string;
  /** backend_type with role, database, client... ("client backend alice@app [local] idle"). */
  description: string;
  /** The context the supervisor decides this process's calls in ("session/alice/app", "checkpointer"). */
  context: string;
  title: ProcessTitle;
  noNewPrivs: boolean | null;
  seccompMode: SeccompModeName | null;
  seccompFilters: number | null;
  speculationStoreBypass: string | null;
  /** More than one thread whose seccomp state differs from the main thread's. */
  threadsDiffer: boolean;
  /** The filters read from the kernel: lengths in instructions, newest first (root only). */
  kernelPrograms: number[] | null;
  comparison: FilterComparison | null;
  /** Why the kernel's filters could not be read for this process. */
  error: string | null;
  /** The process ended while status looked at it. */
  gone: boolean;
  /** "yes", "NO (2 differ)", "NO FILTER", "unknown", ... as the table shows it. */
  matchesPolicy: string;
  /** Human sentences: the verdict and any problems. */
  problems: string[];
  ok: boolean;
}

export interface StatusReport {
  postmasterPid: number;
  /** How the postmaster was found: "--pid", "postmaster.pid", "run state". */
  foundBy: string;
  dataDir: string | null;
  arch: Arch;
  policyPath: string | null;
  /** Where the policy path came from: "--policy" or "run state". */
  policyFrom: string | null;
  runState: RunState | null;
  /** Whether the kernel's filters could be read (CAP_SYS_ADMIN, not under seccomp). */
  kernelVisible: boolean;
  /** Why not, when kernelVisible is false. */
  kernelNote: string | null;
  /** Notes about the run: no policy, policy seccomp = off, ... */
  notes: string[];
  processes: ProcessReport[];
  /** The postmaster's per-syscall table (with --syscalls). */
  syscalls: VerdictRow[] | null;
  /** True when every process has a filter, no_new_privs, and (as far as visible) the policy's verdicts. */
  ok: boolean;
}

/** The table row for one process: pid | backend_type | no_new_privs | seccomp | filters | matches_policy. */
export const STATUS_COLUMNS = ["pid", "backend_type", "no_new_privs", "seccomp", "filters", "matches_policy"] as const;
export const SYSCALL_COLUMNS = ["syscall", "syscallnum", "kernel_action", "policy_action"] as const;

/** Differences listed in a summary line; --syscalls and --json show them all. */
const MAX_LISTED = 12;

const yesNo = (b: boolean | null): Cell => (b === null ? null : b ? "yes" : "no");

/** Decide the verdict of one process from what was read. Pure. */
export function judgeProcess(
  p: Omit<ProcessReport, "matchesPolicy" | "problems" | "ok">,
  ctx: { kernelVisible: boolean; havePolicy: boolean; policyEnabled: boolean },
): Pick<ProcessReport, "matchesPolicy" | "problems" | "ok"> {
  const problems: string[] = [];
  let matches: string;
  let ok = true;
  if (p.gone) return { matchesPolicy: "gone", problems: ["ended while status looked at it"], ok: true };
  const noFilter = p.seccompMode === "disabled" || (p.kernelPrograms !== null && p.kernelPrograms.length === 0 && p.error === null);
  if (noFilter && ctx.policyEnabled) {
    matches = "NO FILTER";
    ok = false;
    problems.push("runs WITHOUT a seccomp filter: it escaped the launcher (or the server was not started by pg_seccomp run)");
  } else if (p.seccompMode === "strict") {
    matches = "NO (strict mode)";
    ok = false;
    problems.push("is in seccomp strict mode, not filter mode");
  } else if (p.error !== null) {
    matches = "error";
    ok = false;
    problems.push(`cannot read its filters: ${p.error}`);
  } else if (!ctx.kernelVisible) {
    matches = "unknown";
    if (p.seccompMode === "filter") {
      problems.push(`filter mode, ${p.seccompFilters ?? "?"} filter${p.seccompFilters === 1 ? "" : "s"} (root can compare them with the policy)`);
    }
  } else if (!ctx.havePolicy) {
    matches = "no policy";
  } else if (!ctx.policyEnabled) {
    matches = noFilter ? "yes" : "NO (filtered)";
    if (!noFilter) {
      ok = false;
      problems.push("has a filter although the policy sets seccomp = off");
    } else problems.push("has no filter, as the policy (seccomp = off) says");
  } else if (p.comparison) {
    const c = p.comparison;
    if (c.matches) {
      matches = "yes";
      problems.push(
        `filter matches the policy (${c.checked} syscalls checked)` +
          (c.identicalProgram === null
            ? "; but no filter is the program run installs for it, so argument conditions were compared only at zero arguments"
            : ""),
      );
    } else {
      ok = false;
      matches = `NO (${c.differences.length} differ)`;
      const shown = c.differences.slice(0, MAX_LISTED);
      const more = c.differences.length - shown.length;
      problems.push(
        `${c.differences.length} of ${c.checked} syscalls differ from the policy: ` +
          shown.map((d) => `${d.syscall} (${d.syscallnum}): kernel ${d.kernel_action}, policy ${d.policy_action}`).join("; ") +
          (more > 0 ? `; and ${more} more (--syscalls or --json lists them all)` : ""),
      );
    }
  } else {
    matches = "unknown";
  }
  if (p.noNewPrivs === false && !noFilter) {
    ok = false;
    problems.push("no_new_privs is off (pg_seccomp run always sets it)");
  }
  if (p.threadsDiffer) {
    ok = false;
    problems.push("its threads do not all have the same seccomp filters");
  }
  return { matchesPolicy: matches, problems, ok };
}

/** The psql-style text: the process table, then one summary line per process. Pure. */
export function formatStatus(r: StatusReport): string {
  const out: string[] = [];
  out.push(
    `postmaster ${r.postmasterPid} (found by ${r.foundBy}${r.dataDir ? `, data directory ${r.dataDir}` : ""}), arch ${r.arch}` +
      (r.policyPath ? `, policy ${r.policyPath} (${r.policyFrom})` : ""),
  );
  if (r.kernelNote) out.push(r.kernelNote);
  for (const n of r.notes) out.push(n);
  out.push("");
  const rows = r.processes.map((p) => ({
    pid: p.pid,
    backend_type: p.backendType,
    no_new_privs: yesNo(p.noNewPrivs),
    seccomp: p.seccompMode,
    filters: p.kernelPrograms !== null ? p.kernelPrograms.length : p.seccompFilters,
    matches_policy: p.matchesPolicy,
  }));
  out.push(psqlTable(STATUS_COLUMNS, rows).trimEnd());
  out.push("");
  const seen = new Map<string, number>();
  for (const p of r.processes) {
    const head = `pid ${p.pid} (${p.description})`;
    const warn = p.ok ? "" : "WARNING: ";
    for (const line of p.problems) {
      // Long lists of differences are printed once; every other line for every process.
      const first = /^\d+ of \d+ syscalls differ/.test(line) ? seen.get(line) : undefined;
      if (first !== undefined) out.push(`${warn}${head}: ${line.slice(0, line.indexOf(":"))}, the same as pid ${first}`);
      else out.push(`${warn}${head}: ${line}`);
      if (!seen.has(line)) seen.set(line, p.pid);
    }
  }
  const bad = r.processes.filter((p) => !p.ok).length;
  out.push(
    bad === 0
      ? `${r.processes.length} process${r.processes.length === 1 ? "" : "es"}: ok${r.kernelVisible ? "" : " as far as /proc shows"}`
      : `${bad} of ${r.processes.length} processes need attention`,
  );
  if (r.syscalls) {
    out.push("");
    out.push(`effective filter of the postmaster (${r.postmasterPid}):`);
    out.push(psqlTable(SYSCALL_COLUMNS, r.syscalls.map((s) => ({ ...s, kernel_action: s.kernel_action ?? "?" }))).trimEnd());
  }
  return out.join("\n") + "\n";
}

/** The report as JSON (bigints as strings). Pure. */
export function statusJson(r: StatusReport): string {
  const slim = {
    ...r,
    processes: r.processes.map((p) => ({
      ...p,
      comparison: p.comparison && {
        checked: p.comparison.checked,
        programs: p.comparison.programs,
        identicalProgram: p.comparison.identicalProgram,
        matches: p.comparison.matches,
        differences: p.comparison.differences,
      },
    })),
  };
  return JSON.stringify(slim, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n";
}

// =============================================================================================
// Reading the machine

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
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** Whether this process may read other processes' filters, and if not, the sentence that says so. */
export function filterAccess(procRoot = "/proc"): { ok: true } | { ok: false; reason: string } {
  const self = parseProcStatus(readText(join(procRoot, "self/status")) ?? "");
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

/** pid -> ppid for every process in /proc. */
export function readProcessTree(procRoot = "/proc"): Map<number, number> {
  const tree = new Map<number, number>();
  let names: string[];
  try {
    names = readdirSync(procRoot);
  } catch {
    return tree;
  }
  for (const n of names) {
    if (!/^\d+$/.test(n)) continue;
    const st = readText(join(procRoot, n, "stat"));
    const parsed = st === undefined ? undefined : parseProcStat(st);
    if (parsed) tree.set(parsed.pid, parsed.ppid);
  }
  return tree;
}

function alive(pid: number, procRoot: string): boolean {
  return readText(join(procRoot, String(pid), "stat")) !== undefined;
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
export function findPostmaster(target: { pid?: number; dataDir?: string }, procRoot = "/proc", runStateDir?: string): PostmasterLocation {
  // Without root, the run state of a server run started as root is still readable in /run/pg_seccomp.
  // And that of a server started by the server's user (pg_ctl, pg_ctlcluster) in that user's
  // own directory: taken only when its files are that user's, and only with a policy file root
  // owns and anyone may read (so a forged record makes root read nothing the user could not).
  const state = (by: { pid?: number; dataDir?: string }): RunState | null => {
    if (runStateDir !== undefined) return findRunState(by, runStateDir) ?? null;
    const owner = ownerUid(by.pid !== undefined ? join(procRoot, String(by.pid)) : by.dataDir!);
    for (const place of runStatePlaces(owner)) {
      const rs = findRunState(by, place.dir, place.trustedUids);
      if (!rs) continue;
      if (place.trustedUids && !place.trustedUids.includes(0) && !readableRootFile(rs.policyPath)) continue;
      return rs;
    }
    return null;
  };
  if (target.pid !== undefined) {
    let pid = target.pid;
    if (!alive(pid, procRoot)) throw new StatusError(`no process ${pid}`);
    const title = parseProcessTitle(readText(join(procRoot, String(pid), "cmdline")) ?? "");
    let foundBy = "--pid";
    if (title.title.startsWith(TITLE_PREFIX)) {
      // A backend: its postmaster is its parent.
      const st = parseProcStat(readText(join(procRoot, String(pid), "stat")) ?? "");
      if (st && st.ppid > 1) {
        pid = st.ppid;
        foundBy = `--pid ${target.pid} (a ${title.backendType}), its parent`;
      }
    }
    const rs = state({ pid });
    return { pid, foundBy, dataDir: rs?.dataDir ?? target.dataDir ?? null, runState: rs };
  }
  if (target.dataDir !== undefined) {
    const dataDir = resolve(target.dataDir);
    const text = readServerFile(join(dataDir, "postmaster.pid"), 4096);
    const pid = text === undefined ? undefined : parsePostmasterPid(text);
    if (pid !== undefined && alive(pid, procRoot)) return { pid, foundBy: "postmaster.pid", dataDir, runState: state({ pid }) };
    const rs = state({ dataDir });
    if (rs) return { pid: rs.postmasterPid, foundBy: "run state", dataDir, runState: rs };
    if (pid !== undefined) throw new StatusError(`${join(dataDir, "postmaster.pid")} names process ${pid}, which is not running (a stale file?)`);
    throw new StatusError(
      text === undefined
        ? `no server is running on ${dataDir}: cannot read ${join(dataDir, "postmaster.pid")} and pg_seccomp run has no record of it`
        : `${join(dataDir, "postmaster.pid")} does not start with a pid`,
    );
  }
  throw new StatusError("say which server: -D DATADIR or --pid PID");
}

function readProcess(pid: number, procRoot: string, postmaster: boolean): { title: ProcessTitle; status: ProcStatus; threadsDiffer: boolean } | undefined {
  const status = readText(join(procRoot, String(pid), "status"));
  const cmdline = readText(join(procRoot, String(pid), "cmdline"));
  if (status === undefined || cmdline === undefined) return undefined;
  const st = parseProcStatus(status);
  let threadsDiffer = false;
  if ((st.threads ?? 1) > 1) {
    let tids: string[] = [];
    try {
      tids = readdirSync(join(procRoot, String(pid), "task"));
    } catch {
      // gone
    }
    for (const tid of tids) {
      const t = parseProcStatus(readText(join(procRoot, String(pid), "task", tid, "status")) ?? "");
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
  const where = findPostmaster({ pid: opts.pid, dataDir: opts.dataDir }, procRoot, opts.runStateDir);
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

  const tree = readProcessTree(procRoot);
  // Not this process itself (status run from a shell that is the given pid's child, say).
  const pids = [where.pid, ...descendants(where.pid, tree)].filter((p) => p !== process.pid);
  const processes: ProcessReport[] = [];
  let syscalls: VerdictRow[] | null = null;
  const cache = new Map<string, FilterComparison>();
  // The supervisor's own classification: what the launcher pinned (its run-state record), and
  // for anything a pinned process started, that process's context.
  // Pins are display only (the kernel's filters are what status compares), so a record in the
  // server's user's directory is read like ours.
  const launcherPins = rs ? runStatePlaces(ownerUid(join(procRoot, String(where.pid)))).map((p) => readContexts(where.pid, p.dir)).find((c) => c !== undefined) : undefined;
  const classifier = new Classifier(where.pid, {
    cmdline: (pid) => readText(join(procRoot, String(pid), "cmdline")),
    stat: (pid) => readText(join(procRoot, String(pid), "stat")),
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
    const info = readProcess(pid, procRoot, isPm);
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
        if (e instanceof KernelError && e.code === "ESRCH" && !alive(pid, procRoot)) gone = true;
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
