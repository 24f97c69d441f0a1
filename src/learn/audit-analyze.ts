// audit2allow's analysis: which records to keep (postgres processes by default) and what they
// add up to, per arch: the allow list, what was denied, what cannot be listed. Pure.

import { collate } from "../render/effective-table.js";
import { type Arch } from "../syscalls/index.js";
import {
  AuditLogReader, ReadCounts, RecordForm, SeccompRecord, actionDenies, interpretedTimeOrder,
} from "../host/audit-records.js";

// ---------------------------------------------------------------------------------------------
// Which records to keep

export interface AuditFilter {
  /** Keep records of processes with one of these command names (instead of postgres ones). */
  comm?: readonly string[];
  /** Keep records of processes running one of these executables (a path, or a file name). */
  exe?: readonly string[];
  /** Keep every process's records. */
  all?: boolean;
  /** Keep records of this arch only. */
  arch?: Arch;
}

/** The kernel keeps 15 bytes of a command name (TASK_COMM_LEN 16). */
const COMM_LEN = 15;

function exePath(exe: string | undefined): string | undefined {
  // A binary replaced while running (a package upgrade) shows as "/path (deleted)".
  return exe?.replace(/ \(deleted\)$/, "");
}

/** PostgreSQL's processes: comm "postgres", or an executable named postgres or postmaster. */
export function isPostgresRecord(r: Pick<SeccompRecord, "comm" | "exe">): boolean {
  const exe = exePath(r.exe);
  return r.comm === "postgres" || (exe !== undefined && /\/(?:postgres|postmaster)$/.test(exe));
}

function commMatches(comm: string | undefined, name: string): boolean {
  return comm !== undefined && (comm === name || (name.length > COMM_LEN && comm === name.slice(0, COMM_LEN)));
}

function exeMatches(exe: string | undefined, want: string): boolean {
  const path = exePath(exe);
  if (path === undefined) return false;
  return path === want || (!want.includes("/") && path.endsWith(`/${want}`));
}

/** Whether `r`'s process is one the filter keeps (the arch is checked separately). */
export function processSelected(r: Pick<SeccompRecord, "comm" | "exe">, filter: AuditFilter): boolean {
  if (filter.all) return true;
  const comms = filter.comm ?? [];
  const exes = filter.exe ?? [];
  if (comms.length === 0 && exes.length === 0) return isPostgresRecord(r);
  return comms.some((c) => commMatches(r.comm, c)) || exes.some((e) => exeMatches(r.exe, e));
}

function describeFilter(filter: AuditFilter): string {
  if (filter.all) return "every process";
  const parts = [...(filter.comm ?? []).map((c) => `comm ${c}`), ...(filter.exe ?? []).map((e) => `exe ${e}`)];
  return parts.length ? parts.join(", ") : "postgres processes";
}

// ---------------------------------------------------------------------------------------------
// The report

export interface SyscallCount {
  syscall: string;
  /** -1 when the record gave a name only. */
  syscallnum: number;
  arch: string;
  known: boolean;
  records: number;
  pids: number;
  /** Records per action, e.g. { LOG: 12, KILL_PROCESS: 1 }. */
  actions: Record<string, number>;
}

export interface ProcessCount {
  comm: string;
  exe: string;
  records: number;
  pids: number;
  syscalls: number;
}

export interface AuditReport {
  source: string;
  /** Which processes were kept, in words ("postgres processes", "every process", "comm sh, exe /bin/cp"). */
  processes: string;
  arch: Arch | null;
  counts: {
    lines: number;
    seccompRecords: number;
    kept: number;
    filteredOut: number;
    filteredOutByProcess: number;
    filteredOutByArch: number;
    malformedLines: number;
    otherRecords: number;
    otherLines: number;
    /** Kept records of our arches whose number (or name) our table does not have. */
    unknownSyscallRecords: number;
    /** Kept records of the i386 and x32 ABIs and of arches we have no table for. */
    foreignAbiRecords: number;
  };
  malformedLineNumbers: number[];
  malformedReasons: Record<string, number>;
  otherRecordTypes: Record<string, number>;
  forms: Partial<Record<RecordForm, number>>;
  /** ISO times (UTC) of the first and last kept record; ausearch -i dates as printed when no record has an epoch stamp. */
  timeRange: { first: string; last: string } | null;
  /** The allow list per arch: sorted as the seed's get_syscalls.sh sorted (en_US collation). */
  allow: Partial<Record<Arch, string[]>>;
  /** Syscalls of the allow lists that some record shows denied (KILL*, ERRNO, TRAP). */
  denied: Partial<Record<Arch, string[]>>;
  actions: Record<string, number>;
  /** Kept records per syscall, most records first. */
  syscalls: SyscallCount[];
  /** Kept records per process (comm and exe), most records first. */
  processesSeen: ProcessCount[];
  /** Records left out by the process filter, per process. */
  otherProcesses: ProcessCount[];
  /** Kept records that cannot go into an allow list: unknown numbers, foreign ABIs. */
  notListed: Array<{ arch: string; syscall: string; records: number }>;
}

interface SyscallAcc {
  syscall: string;
  nr: number;
  arch: string;
  tableArch?: Arch;
  known: boolean;
  records: number;
  pids: Set<number>;
  actions: Map<string, number>;
}

interface ProcessAcc {
  comm: string;
  exe: string;
  records: number;
  pids: Set<number>;
  syscalls: Set<string>;
}

/** Collects the counts of a report from records as they stream by. */
export class AuditAnalyzer {
  private kept = 0;
  private byProcess = 0;
  private byArch = 0;
  private readonly syscalls = new Map<string, SyscallAcc>();
  private readonly processes = new Map<string, ProcessAcc>();
  private readonly others = new Map<string, ProcessAcc>();
  private readonly actions = new Map<string, number>();
  /** First and last record time: [0] from epoch stamps, [1] from ausearch -i dates (local time, another scale). */
  private readonly first: Array<{ order: number; text: string | number } | undefined> = [undefined, undefined];
  private readonly last: Array<{ order: number; text: string | number } | undefined> = [undefined, undefined];

  constructor(private readonly filter: AuditFilter = {}) {}

  add(r: SeccompRecord): void {
    if (!processSelected(r, this.filter)) {
      this.byProcess++;
      countProcess(this.others, r);
      return;
    }
    if (this.filter.arch !== undefined && r.tableArch !== this.filter.arch) {
      this.byArch++;
      return;
    }
    this.kept++;
    countProcess(this.processes, r);
    this.actions.set(r.action, (this.actions.get(r.action) ?? 0) + 1);
    const key = `${r.arch}\0${r.syscall}`;
    let s = this.syscalls.get(key);
    if (!s) {
      s = { syscall: r.syscall, nr: r.nr ?? -1, arch: r.arch, known: r.known, records: 0, pids: new Set(), actions: new Map() };
      if (r.tableArch) s.tableArch = r.tableArch;
      this.syscalls.set(key, s);
    }
    s.records++;
    if (r.pid !== undefined) s.pids.add(r.pid);
    s.actions.set(r.action, (s.actions.get(r.action) ?? 0) + 1);
    const t = recordTime(r);
    if (t) {
      const first = this.first[t.scale];
      const last = this.last[t.scale];
      if (!first || t.order < first.order) this.first[t.scale] = t;
      if (!last || t.order > last.order) this.last[t.scale] = t;
    }
  }

  private timeRange(): AuditReport["timeRange"] {
    for (const scale of [0, 1]) {
      const first = this.first[scale];
      const last = this.last[scale];
      if (first && last) return { first: timeText(first), last: timeText(last) };
    }
    return null;
  }

  report(source: string, counts: ReadCounts): AuditReport {
    const allow: Partial<Record<Arch, string[]>> = {};
    const denied: Partial<Record<Arch, string[]>> = {};
    const notListed: AuditReport["notListed"] = [];
    let unknownSyscallRecords = 0;
    let foreignAbiRecords = 0;
    for (const s of this.syscalls.values()) {
      if (s.known && s.tableArch) {
        (allow[s.tableArch] ??= []).push(s.syscall);
        if ([...s.actions.keys()].some(actionDenies)) (denied[s.tableArch] ??= []).push(s.syscall);
      } else {
        notListed.push({ arch: s.arch, syscall: s.syscall, records: s.records });
        if (s.tableArch) unknownSyscallRecords += s.records;
        else foreignAbiRecords += s.records;
      }
    }
    for (const a of Object.keys(allow) as Arch[]) allow[a] = sortSyscallNames(allow[a]!);
    for (const a of Object.keys(denied) as Arch[]) denied[a] = sortSyscallNames(denied[a]!);
    notListed.sort((a, b) => b.records - a.records || collate(a.syscall, b.syscall));
    const byCount = <T extends { records: number }>(key: (t: T) => string) => (a: T, b: T) => b.records - a.records || collate(key(a), key(b));
    return {
      source,
      processes: describeFilter(this.filter),
      arch: this.filter.arch ?? null,
      counts: {
        lines: counts.lines,
        seccompRecords: counts.seccompRecords,
        kept: this.kept,
        filteredOut: this.byProcess + this.byArch,
        filteredOutByProcess: this.byProcess,
        filteredOutByArch: this.byArch,
        malformedLines: counts.malformed,
        otherRecords: counts.otherRecords,
        otherLines: counts.otherLines,
        unknownSyscallRecords,
        foreignAbiRecords,
      },
      malformedLineNumbers: counts.malformedLines,
      malformedReasons: counts.malformedReasons,
      otherRecordTypes: counts.otherRecordTypes,
      forms: counts.forms,
      timeRange: this.timeRange(),
      allow,
      denied,
      actions: Object.fromEntries([...this.actions].sort((a, b) => b[1] - a[1])),
      syscalls: [...this.syscalls.values()]
        .map((s) => ({
          syscall: s.syscall, syscallnum: s.nr, arch: s.arch, known: s.known, records: s.records, pids: s.pids.size,
          actions: Object.fromEntries([...s.actions].sort((a, b) => b[1] - a[1])),
        }))
        .sort(byCount((s) => s.syscall)),
      processesSeen: processRows(this.processes).sort(byCount((p) => p.comm)),
      otherProcesses: processRows(this.others).sort(byCount((p) => p.comm)),
      notListed,
    };
  }
}

function countProcess(map: Map<string, ProcessAcc>, r: SeccompRecord): void {
  const comm = r.comm ?? "?";
  const exe = r.exe ?? "?";
  const key = `${comm}\0${exe}`;
  let p = map.get(key);
  if (!p) map.set(key, (p = { comm, exe, records: 0, pids: new Set(), syscalls: new Set() }));
  p.records++;
  if (r.pid !== undefined) p.pids.add(r.pid);
  p.syscalls.add(`${r.arch}:${r.syscall}`);
}

function processRows(map: Map<string, ProcessAcc>): ProcessCount[] {
  return [...map.values()].map((p) => ({ comm: p.comm, exe: p.exe, records: p.records, pids: p.pids.size, syscalls: p.syscalls.size }));
}

/** When a record was written, on one of two scales; `text` is what to print (ms: an ISO time). */
function recordTime(r: SeccompRecord): { scale: 0 | 1; order: number; text: string | number } | undefined {
  if (r.timeMs !== undefined) return { scale: 0, order: r.timeMs, text: r.timeMs };
  if (r.timeText !== undefined) {
    const order = interpretedTimeOrder(r.timeText);
    if (order !== undefined) return { scale: 1, order, text: r.timeText };
  }
  return undefined;
}

function timeText(t: { text: string | number }): string {
  return typeof t.text === "number" ? new Date(t.text).toISOString() : t.text;
}

/** Reads `text` and reports on it (for tests and small inputs; the CLI streams). */
export function analyzeAuditLog(text: string, filter: AuditFilter = {}, source = "<text>"): AuditReport {
  const analyzer = new AuditAnalyzer(filter);
  const reader = new AuditLogReader((r) => analyzer.add(r));
  reader.push(text);
  return analyzer.report(source, reader.end());
}

/**
 * Sorted and deduplicated the way the seed's get_syscalls.sh printed them (`sort` in an
 * en_US.UTF-8 locale): letters and digits first, underscores only to break ties, so
 * setitimer < set_robust_list < setsid.
 */
export function sortSyscallNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort(collate);
}
