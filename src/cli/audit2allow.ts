// `pg_seccomp audit2allow [FILE|-]`: option checks, the messages and the exit code around the
// parser (src/host/audit-records.ts), the analysis and the output (src/learn/audit-*.ts). Gets its
// input through the `read` function it is handed.

import { ARCHES, isArch, syscallTableInfo, type Arch } from "../syscalls/index.js";
import { AuditLogReader } from "../host/audit-records.js";
import { AuditAnalyzer, type AuditFilter } from "../learn/audit-analyze.js";
import { formatList, formatPolicy, formatStats, plural } from "../learn/audit-render.js";

// ---------------------------------------------------------------------------------------------
// The command

/** Where auditd writes, and what the seed's get_syscalls.sh read. */
export const DEFAULT_AUDIT_LOG = "/var/log/audit/audit.log";

export interface Audit2allowOptions {
  /** list (default): one comma-separated line; policy: a global_syscall_allow snippet. */
  format?: string;
  /** Print counts per syscall and process instead of the list. */
  stats?: boolean;
  comm?: string | readonly string[];
  exe?: string | readonly string[];
  all?: boolean;
  arch?: string;
  json?: boolean;
}

export interface Audit2allowIO {
  /**
   * The contents of `file` in chunks of any size; "-" is standard input. Each chunk is read
   * before the next is asked for, so a reader may reuse one buffer. May throw (when called or
   * while iterating) with a Node errno error such as ENOENT.
   */
  read(file: string): Iterable<string | Uint8Array>;
}

export interface Audit2allowResult {
  stdout: string;
  stderr: string;
  /** 0, 1 (input unreadable, or a list asked of records of several arches), 2 (bad options). */
  exitCode: number;
}

const PREFIX = "pg_seccomp";

function listOf(v: string | readonly string[] | undefined): string[] {
  if (v === undefined) return [];
  return (typeof v === "string" ? [v] : [...v]).flatMap((s) => s.split(",")).map((s) => s.trim()).filter((s) => s !== "");
}

function lineNumbers(lines: readonly number[], total: number, shown = 5): string {
  const s = lines.slice(0, shown).join(", ");
  return total > shown ? `${s}, ...` : s;
}

function readError(file: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  const what = file === "-" ? "standard input" : file;
  switch (err?.code) {
    case "ENOENT":
      return `cannot read ${what}: no such file${file === DEFAULT_AUDIT_LOG ? " (is auditd installed and running? or give a file: dmesg or journalctl -k output, or - for standard input)" : ""}`;
    case "EACCES":
    case "EPERM":
      return `cannot read ${what}: permission denied (audit logs and the kernel log are readable by root or the adm group)`;
    case "EISDIR":
      return `cannot read ${what}: it is a directory`;
    default:
      return `cannot read ${what}: ${err?.message ?? String(e)}`;
  }
}

/**
 * `pg_seccomp audit2allow [FILE|-]`: reads FILE (default /var/log/audit/audit.log; - is standard
 * input) through `io`, and returns what to print and the exit code.
 */
export function audit2allow(file: string | undefined, opts: Audit2allowOptions, io: Audit2allowIO): Audit2allowResult {
  const err: string[] = [];
  const fail = (code: number, message: string): Audit2allowResult => ({ stdout: "", stderr: [...err, `${PREFIX}: error: ${message}\n`].join(""), exitCode: code });
  const format = opts.format ?? "list";
  if (format !== "list" && format !== "policy") return fail(2, `--format must be list or policy, not "${format}"`);
  if (opts.arch !== undefined && !isArch(opts.arch)) return fail(2, `--arch must be one of ${ARCHES.join(", ")}, not "${opts.arch}"`);
  const comm = listOf(opts.comm);
  const exe = listOf(opts.exe);
  if (opts.all && (comm.length || exe.length)) return fail(2, "--all keeps every process; drop --comm and --exe, or --all");
  const filter: AuditFilter = { all: opts.all ?? false, comm, exe, ...(opts.arch !== undefined ? { arch: opts.arch as Arch } : {}) };

  const path = file ?? DEFAULT_AUDIT_LOG;
  const source = path === "-" ? "standard input" : path;
  const analyzer = new AuditAnalyzer(filter);
  const reader = new AuditLogReader((r) => analyzer.add(r));
  try {
    for (const chunk of io.read(path)) reader.push(chunk);
  } catch (e) {
    return fail(1, readError(path, e));
  }
  const report = analyzer.report(source, reader.end());
  const c = report.counts;

  if (c.malformedLines > 0) {
    err.push(`${PREFIX}: note: skipped ${plural(c.malformedLines, "malformed line")} (line${c.malformedLines === 1 ? "" : "s"} ${lineNumbers(report.malformedLineNumbers, c.malformedLines)}): ` +
      `${Object.entries(report.malformedReasons).map(([r, n]) => `${r}: ${n}`).join("; ")}\n`);
  }
  if (c.seccompRecords === 0) {
    err.push(`${PREFIX}: note: ${source} holds no SECCOMP records (${plural(c.lines, "line")} read${c.otherRecords ? `, ${plural(c.otherRecords, "other audit record")}` : ""})\n`);
  } else if (c.filteredOutByProcess > 0) {
    const who = report.otherProcesses.slice(0, 5).map((p) => `${p.comm}: ${p.records}`).join(", ") + (report.otherProcesses.length > 5 ? ", ..." : "");
    err.push(`${PREFIX}: note: left out ${plural(c.filteredOutByProcess, "record")} of processes other than ${report.processes} (${who}); ` +
      "--all keeps every process\n");
  }
  if (c.filteredOutByArch > 0) err.push(`${PREFIX}: note: left out ${plural(c.filteredOutByArch, "record")} of arches other than ${filter.arch}\n`);
  const foreign = report.notListed.filter((n) => !isArch(n.arch));
  if (foreign.length) {
    err.push(`${PREFIX}: warning: ${plural(c.foreignAbiRecords, "record")} of calls through the i386 or x32 ABI or an arch without a syscall table ` +
      `(${foreign.map((n) => `${n.arch} ${n.syscall}`).join(", ")}) are not in the list: pg_seccomp's filters kill the i386 and x32 ABIs\n`);
  }
  const unknown = report.notListed.filter((n) => isArch(n.arch));
  if (unknown.length) {
    err.push(`${PREFIX}: warning: ${plural(c.unknownSyscallRecords, "record")} name syscalls that pg_seccomp's tables (Linux ${syscallTableInfo("x86_64").kernelVersion}) do not have ` +
      `(${unknown.map((n) => `${n.arch} ${n.syscall}`).join(", ")}); they are not in the list (syscall_unknown_action decides them)\n`);
  }

  if (opts.json) return { stdout: JSON.stringify(report, null, 2) + "\n", stderr: err.join(""), exitCode: 0 };
  if (opts.stats) return { stdout: formatStats(report), stderr: err.join(""), exitCode: 0 };
  if (format === "policy") return { stdout: formatPolicy(report), stderr: err.join(""), exitCode: 0 };

  const arches = ARCHES.filter((a) => report.allow[a]?.length);
  if (arches.length > 1) {
    const per = arches.map((a) => `${a}: ${plural(report.allow[a]!.length, "syscall")}`).join(", ");
    return fail(1, `the records come from several arches (${per}); choose one with --arch, or use --format policy for a line per arch`);
  }
  const arch = arches[0];
  const names = arch ? report.allow[arch]! : [];
  const denied = arch ? report.denied[arch] ?? [] : [];
  if (denied.length) {
    err.push(`${PREFIX}: note: ${plural(denied.length, "syscall")} of the list ${denied.length === 1 ? "was" : "were"} denied when recorded ` +
      `(${denied.join(", ")}); review ${denied.length === 1 ? "it" : "them"} before allowing\n`);
  }
  return { stdout: formatList(names), stderr: err.join(""), exitCode: 0 };
}
