// `status`: the report, process by process: judging each process and formatting the table or JSON. Pure.

import { type ProcessTitle } from "../postgres/process-title.js";
import { type RunState } from "../host/run-state.js";
import { type Arch } from "../syscalls/index.js";
import { psqlTable, type Cell } from "../render/format.js";
import { type SeccompModeName } from "../host/proc.js";
import type { FilterComparison, VerdictRow } from "./status-compare.js";

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
