// audit2allow: the syscalls that seccomp's audit records name, as an allow list.
//
// The seed's learning procedure runs the server with `log`, lets the kernel write one SECCOMP
// audit record per logged call, and turns the records into a list with get_syscalls.sh. This
// module does that step, for every form the records come in:
//
//   audit.log (auditd, RAW or ENRICHED)   type=SECCOMP msg=audit(1732800000.123:456): auid=... syscall=41 ...
//   ausearch (raw, and -i interpreted)    ----, time->..., type=SECCOMP msg=audit(11/28/26 15:00:00.123:456) : ... syscall=socket
//   the kernel log (dmesg, /dev/kmsg,     [ 1234.567890] audit: type=1326 audit(1732800000.123:456): ...
//     syslog, journalctl -k)              Nov 28 15:00:00 host kernel: audit: type=1326 ...
//   journald's audit transport            2026-11-28T15:00:00+0000 host audit[1234]: SECCOMP auid=... (and -o json)
//
// Pure: text in, data out (no I/O). `audit2allow()` is what the CLI calls; it gets its input
// through the `read` function it is handed.

import {
  AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_NAMES, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, retData, seccompActionOf,
} from "../seccomp/index.js";
import { psqlTable, type Cell } from "../inspect/format.js";
import { collate } from "../inspect/effective-table.js";
import { errnoName } from "../syscalls/errno.js";
import { ARCHES, isArch, syscallName, syscallNumber, syscallTableInfo, type Arch } from "../syscalls/index.js";

// ---------------------------------------------------------------------------------------------
// Records

/** How a record was written: which tool's output the line came from. */
export type RecordForm =
  /** `type=SECCOMP msg=audit(SECONDS.MS:SERIAL): ...`: audit.log, ausearch, audisp-syslog. */
  | "audit"
  /** ausearch -i / --interpret: names instead of numbers, the stamp as a local date. */
  | "audit-interpreted"
  /** `audit: type=1326 audit(SECONDS.MS:SERIAL): ...`: the kernel log when no auditd runs. */
  | "kernel"
  /** `audit[PID]: SECCOMP ...`: journald's audit transport in journalctl's text formats. */
  | "journal"
  /** journalctl -o json, either transport. */
  | "journal-json";

/** The ABIs a record can come from: our tables' arches, or the two x86_64 compat ABIs. */
export type Abi = Arch | "i386" | "x32";

export interface SeccompRecord {
  /** 1-based line number in the input. */
  line: number;
  form: RecordForm;
  /** Milliseconds since the epoch, from the record's audit(...) stamp (or journald's timestamp). */
  timeMs?: number;
  /** The stamp's date as ausearch -i printed it (local time of the machine that ran it). */
  timeText?: string;
  serial?: number;
  /** auditd's node= (name_format), when present. */
  node?: string;
  pid?: number;
  uid?: string;
  auid?: string;
  ses?: string;
  /** Decoded: audit writes values with spaces or other specials as hex, which is undone here. */
  comm?: string;
  exe?: string;
  sig?: string;
  /**
   * "x86_64", "aarch64", "i386" (AUDIT_ARCH_I386: int $0x80 on x86_64), "x32" (AUDIT_ARCH_X86_64
   * with bit 30 set in the number), or another arch as the record spells it (a name, or 0x and
   * the AUDIT_ARCH value).
   */
  arch: string;
  /** Set when `arch` is one of our syscall tables' arches. */
  tableArch?: Arch;
  /** The syscall number as recorded (x32 numbers keep bit 30), when the record gives it. */
  nr?: number;
  /** The name in our table for `tableArch`; else `#nr`, or the name ausearch -i printed. */
  syscall: string;
  /** True when `syscall` is in our table for `tableArch`: such a record can go into an allow list. */
  known: boolean;
  compat?: boolean;
  ip?: string;
  /** The SECCOMP_RET_* value as recorded (the kernel logs the action without its data bits). */
  code?: number;
  /** LOG, ALLOW, KILL_PROCESS, KILL_THREAD, KILL (ausearch -i: process or thread), TRAP, ERRNO, ERRNO(n), USER_NOTIF, TRACE, UNKNOWN(...). */
  action: string;
  /** The errno of an ERRNO action, when the record has it (the kernel's records do not). */
  errno?: number;
}

/** What one line of input is. */
export type LineResult =
  | { kind: "seccomp"; record: Omit<SeccompRecord, "line"> }
  /** An audit record of another type (SYSCALL, ANOM_ABEND, AVC, ...): ignored. */
  | { kind: "other-record"; type: string }
  /** A line that looks like an audit record but cannot be read. */
  | { kind: "malformed"; reason: string }
  /** Anything else: other kernel messages, ausearch's ---- and time-> lines, blank lines. */
  | { kind: "noise" };

// ---------------------------------------------------------------------------------------------
// seccomp return codes

export interface DecodedAction {
  action: string;
  errno?: number;
}

/**
 * The seccomp action of a record's code=. The kernel logs SECCOMP_RET_ACTION_FULL only (an
 * ERRNO record reads 0x50000 whatever the errno was), so ERRNO(n) appears only when a record
 * does carry data bits.
 */
export function decodeSeccompCode(code: number): DecodedAction {
  const info = seccompActionOf(code);
  if (info === undefined) return { action: `UNKNOWN(0x${(code >>> 0).toString(16)})` };
  const data = retData(code);
  if (!info.alwaysShowData || data === 0) return { action: info.name };
  return info.name === "ERRNO" ? { action: `ERRNO(${data})`, errno: data } : { action: `${info.name}(${data})` };
}

/** ausearch -i's names for codes (auparse's seccomptab: both kills print as "kill"). */
const INTERPRETED_CODES: Readonly<Record<string, string>> = {
  kill: "KILL",
  "kill-process": "KILL_PROCESS",
  kill_process: "KILL_PROCESS",
  "kill-thread": "KILL_THREAD",
  kill_thread: "KILL_THREAD",
  trap: "TRAP",
  errno: "ERRNO",
  "user-notify": "USER_NOTIF",
  "user-notif": "USER_NOTIF",
  user_notif: "USER_NOTIF",
  notify: "USER_NOTIF",
  trace: "TRACE",
  log: "LOG",
  allow: "ALLOW",
};

// Records repeat a handful of codes: decode each spelling once.
const codeCache = new Map<string, DecodedAction & { code?: number }>();

function decodeCodeField(v: string | undefined): DecodedAction & { code?: number } {
  if (v === undefined || v === "") return { action: "UNKNOWN" };
  const cached = codeCache.get(v);
  if (cached) return cached;
  const d = decodeCodeValue(v);
  if (codeCache.size < 1024) codeCache.set(v, d);
  return d;
}

function decodeCodeValue(v: string): DecodedAction & { code?: number } {
  const hex = /^(?:0x)?([0-9a-f]{1,8})$/i.exec(v) ?? /^unknown-seccomp-code\((?:0x)?([0-9a-f]{1,8})\)$/i.exec(v);
  if (hex) {
    const code = parseInt(hex[1]!, 16) >>> 0;
    return { ...decodeSeccompCode(code), code };
  }
  const name = v.toLowerCase();
  return { action: Object.hasOwn(INTERPRETED_CODES, name) ? INTERPRETED_CODES[name]! : `UNKNOWN(${v})` };
}

/** Actions that let the call run. USER_NOTIF and TRACE leave it to a supervisor or tracer. */
export function actionAllows(action: string): boolean {
  return action === "LOG" || action === "ALLOW";
}

function actionDenies(action: string): boolean {
  return !actionAllows(action) && !action.startsWith("USER_NOTIF") && !action.startsWith("TRACE") && !action.startsWith("UNKNOWN");
}

// ---------------------------------------------------------------------------------------------
// Architectures

interface ArchInfo {
  arch: string;
  tableArch?: Arch;
}

function archFromAuditValue(value: number, nr: number | undefined): ArchInfo {
  if (value === AUDIT_ARCH_X86_64) {
    if (nr !== undefined && nr >= 0 && (nr & X32_SYSCALL_BIT) !== 0) return { arch: "x32" };
    return { arch: "x86_64", tableArch: "x86_64" };
  }
  if (value === AUDIT_ARCH_AARCH64) return { arch: "aarch64", tableArch: "aarch64" };
  if (value === AUDIT_ARCH_I386) return { arch: "i386" };
  return { arch: AUDIT_ARCH_NAMES.get(value) ?? `0x${value.toString(16)}` };
}

function archFromName(name: string, nr: number | undefined): ArchInfo {
  if (name === "x86_64" || name === "x86-64") return archFromAuditValue(AUDIT_ARCH_X86_64, nr);
  if (name === "aarch64" || name === "arm64") return { arch: "aarch64", tableArch: "aarch64" };
  if (name === "i386" || name === "i686" || name === "x86") return { arch: "i386" };
  return { arch: name };
}

// ---------------------------------------------------------------------------------------------
// Fields

/**
 * `key=value` fields of a record's body. A value runs to the next ` key=` (ausearch -i prints
 * values with spaces unquoted: `comm=seccomp probe exe=/tmp/seccomp probe`; AppArmor labels
 * read `subj=name (enforce)`). The first occurrence of a key wins.
 */
export function parseFields(body: string): Map<string, string> {
  const fields = new Map<string, string>();
  const re = /(?:^|\s)([A-Za-z_][A-Za-z0-9_-]*)=/g;
  let key: string | undefined;
  let valueStart = 0;
  for (let m = re.exec(body); m; m = re.exec(body)) {
    if (key !== undefined && !fields.has(key)) fields.set(key, body.slice(valueStart, m.index).trim());
    key = m[1]!;
    valueStart = m.index + m[0].length;
  }
  if (key !== undefined && !fields.has(key)) fields.set(key, body.slice(valueStart).trim());
  return fields;
}

/**
 * An untrusted string as audit writes it: `"postgres"` (quoted), or hex when it holds a space, a
 * quote, a control or a non-ASCII byte (`comm=706F737467726573`). Interpreted values are as
 * they are.
 */
export function decodeAuditString(value: string, interpreted = false): string {
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) return value.slice(1, -1);
  if (!interpreted && value.length % 2 === 0 && value.length > 0 && /^[0-9A-Fa-f]+$/.test(value)) {
    return Buffer.from(value, "hex").toString("utf8");
  }
  return value;
}

// ---------------------------------------------------------------------------------------------
// Lines

// type=SECCOMP msg=audit(1732800000.123:456): ...   (also type=1326, type=UNKNOWN[1326], node=... before)
const AUDIT_HEADER = /(?:^|\s)type=([A-Za-z0-9_]+(?:\[\d+\])?)\s+msg=audit\(([^)]*)\)\s*:\s?/;
// audit: type=1326 audit(1732800000.123:456): ...
const KERNEL_HEADER = /\baudit: type=(\d+) audit\(([^)]*)\):\s?/;
// audit[1234]: SECCOMP auid=...   (journald's audit transport)
const JOURNAL_HEADER = /\baudit(?:\[(\d+)\])?: ([A-Z][A-Z0-9_]*) (?=[A-Za-z_][A-Za-z0-9_-]*=)/;
// Something that was meant to be a record: a header cut short, or a record body without one.
const BROKEN_HEADER = /(?:\btype=\S+\s+msg=audit\(|\baudit: type=\d+ audit\(|\baudit\[\d+\]: SECCOMP\b|\btype=(?:SECCOMP|1326)\b)/;
const BODY_WITHOUT_HEADER = /(?:^|\s)arch=\S+.*\ssyscall=|(?:^|\s)syscall=\S+.*\sarch=/;

const SECCOMP_TYPES = new Set(["SECCOMP", "1326", "UNKNOWN[1326]"]);

interface Stamp {
  timeMs?: number;
  timeText?: string;
  serial?: number;
  interpreted: boolean;
}

function parseStamp(stamp: string): Stamp | undefined {
  const raw = /^(\d+)\.(\d{1,9}):(\d+)$/.exec(stamp.trim());
  if (raw) {
    const ms = Number(raw[1]) * 1000 + Math.floor(Number(raw[2]!.padEnd(3, "0").slice(0, 3)));
    return { timeMs: ms, serial: Number(raw[3]), interpreted: false };
  }
  // ausearch -i: "11/28/26 15:44:51.509:17626" (the date in the locale of the machine that ran it)
  const interp = /^(.*\d):(\d+)$/.exec(stamp.trim());
  if (interp && /\d{1,2}:\d{2}:\d{2}/.test(interp[1]!)) return { timeText: interp[1]!, serial: Number(interp[2]), interpreted: true };
  return undefined;
}

/** Naive milliseconds of an ausearch -i date, MM/DD/YY HH:MM:SS.mmm, to order them; undefined if another format. */
function interpretedTimeOrder(text: string): number | undefined {
  const m = /^(\d{1,2})\/(\d{1,2})\/(\d{2,4}) (\d{1,2}):(\d{2}):(\d{2})(?:\.(\d{1,3}))?$/.exec(text);
  if (!m) return undefined;
  const year = Number(m[3]) < 100 ? 2000 + Number(m[3]) : Number(m[3]);
  return Date.UTC(year, Number(m[1]) - 1, Number(m[2]), Number(m[4]), Number(m[5]), Number(m[6]), Number((m[7] ?? "0").padEnd(3, "0")));
}

function classifyBrokenLine(line: string): LineResult {
  if (BROKEN_HEADER.test(line)) return { kind: "malformed", reason: "record header cut short" };
  if (BODY_WITHOUT_HEADER.test(line)) return { kind: "malformed", reason: "record without its type=/audit( header" };
  return { kind: "noise" };
}

/** Reads one line of any supported form. */
export function parseAuditLine(input: string): LineResult {
  let line = input.endsWith("\r") ? input.slice(0, -1) : input;
  if (line.trim() === "") return { kind: "noise" };
  if (line.trimStart().startsWith("{")) return parseJournalJson(line);
  // auditd's ENRICHED format appends the interpreted fields after a GS (0x1d): drop them (they
  // are auditd's reading, e.g. SYSCALL=unknown-syscall(-1) for SECCOMP records in 3.0.9).
  const gs = line.indexOf("\x1d");
  if (gs >= 0) line = line.slice(0, gs);

  let m = AUDIT_HEADER.exec(line);
  if (m) {
    const type = m[1]!;
    if (!SECCOMP_TYPES.has(type)) return { kind: "other-record", type };
    const stamp = parseStamp(m[2]!);
    if (!stamp) return { kind: "malformed", reason: "unreadable msg=audit(...) stamp" };
    const node = /(?:^|\s)node=(\S+)\s+type=/.exec(line)?.[1];
    return seccompRecord(line.slice(m.index + m[0].length), stamp.interpreted ? "audit-interpreted" : "audit", stamp, node);
  }
  m = KERNEL_HEADER.exec(line);
  if (m) {
    if (m[1] !== "1326") return { kind: "other-record", type: m[1]! };
    const stamp = parseStamp(m[2]!);
    if (!stamp || stamp.interpreted) return { kind: "malformed", reason: "unreadable audit(...) stamp" };
    return seccompRecord(line.slice(m.index + m[0].length), "kernel", stamp);
  }
  m = JOURNAL_HEADER.exec(line);
  if (m) {
    if (m[2] !== "SECCOMP") return { kind: "other-record", type: m[2]! };
    return seccompRecord(line.slice(m.index + m[0].length), "journal", { interpreted: false });
  }
  return classifyBrokenLine(line);
}

function parseJournalJson(line: string): LineResult {
  let entry: unknown;
  try {
    entry = JSON.parse(line);
  } catch {
    return classifyBrokenLine(line);
  }
  if (typeof entry !== "object" || entry === null) return { kind: "noise" };
  const e = entry as Record<string, unknown>;
  let message = e.MESSAGE;
  // journald writes a MESSAGE that is not valid UTF-8 as an array of bytes.
  if (Array.isArray(message) && message.every((b) => typeof b === "number")) message = Buffer.from(message as number[]).toString("utf8");
  if (typeof message !== "string") return { kind: "noise" };
  const str = (k: string) => (typeof e[k] === "string" ? (e[k] as string) : undefined);
  if (str("_TRANSPORT") === "audit" || str("_AUDIT_TYPE") !== undefined) {
    const head = /^([A-Z][A-Z0-9_]*(?:\[\d+\])?) /.exec(message);
    const type = str("_AUDIT_TYPE_NAME") ?? head?.[1] ?? str("_AUDIT_TYPE") ?? "?";
    if (!SECCOMP_TYPES.has(type) && str("_AUDIT_TYPE") !== "1326") return { kind: "other-record", type };
    const usec = str("_SOURCE_REALTIME_TIMESTAMP") ?? str("__REALTIME_TIMESTAMP");
    const serial = str("_AUDIT_ID");
    const stamp: Stamp = {
      interpreted: false,
      ...(usec && /^\d+$/.test(usec) ? { timeMs: Math.floor(Number(usec) / 1000) } : {}),
      ...(serial && /^\d+$/.test(serial) ? { serial: Number(serial) } : {}),
    };
    return seccompRecord(head ? message.slice(head[0].length) : message, "journal-json", stamp);
  }
  // The kernel transport (journalctl -k -o json): MESSAGE is the kernel's line.
  const r = parseAuditLine(message);
  if (r.kind === "seccomp") r.record.form = "journal-json";
  return r;
}

/**
 * ausearch -i names syscalls from auparse's tables, which spell a few differently from the
 * kernel's (`ausyscall x86_64 --dump` against ours, audit 3.0.9).
 */
const AUPARSE_NAMES: Readonly<Record<Arch, Readonly<Record<string, string>>>> = {
  x86_64: { pread: "pread64", pwrite: "pwrite64" },
  aarch64: { pread: "pread64", pwrite: "pwrite64", getdents: "getdents64", newfstat: "fstat" },
};

function seccompRecord(body: string, form: RecordForm, stamp: Stamp, node?: string): LineResult {
  const f = parseFields(body);
  const archField = f.get("arch");
  const syscallField = f.get("syscall");
  if (archField === undefined || archField === "") return { kind: "malformed", reason: "SECCOMP record without arch=" };
  if (syscallField === undefined || syscallField === "") return { kind: "malformed", reason: "SECCOMP record without syscall=" };
  const interpreted = stamp.interpreted || !/^[0-9a-f]{1,8}$/i.test(archField);

  // The number (raw records; ausearch -i's unknown-syscall(N)) or the name (ausearch -i).
  let nr: number | undefined;
  let name: string | undefined;
  const num = /^(-?\d+)$/.exec(syscallField) ?? /^unknown-syscall\((-?\d+)\)$/.exec(syscallField);
  if (num) nr = Number(num[1]);
  else if (interpreted && /^[a-z_][a-z0-9_]*$/.test(syscallField)) name = syscallField;
  else return { kind: "malformed", reason: interpreted ? "syscall= is neither a number nor a syscall name" : "syscall= is not a number" };
  if (nr !== undefined && !Number.isSafeInteger(nr)) return { kind: "malformed", reason: "syscall= is out of range" };

  const archInfo = /^[0-9a-f]{1,8}$/i.test(archField) ? archFromAuditValue(parseInt(archField, 16) >>> 0, nr) : archFromName(archField, nr);
  let syscall: string;
  let known = false;
  if (archInfo.tableArch !== undefined) {
    if (nr !== undefined) {
      const n = syscallName(archInfo.tableArch, nr);
      known = n !== undefined;
      syscall = n ?? `#${nr}`;
    } else {
      const aliases = AUPARSE_NAMES[archInfo.tableArch];
      const kernelName = syscallNumber(archInfo.tableArch, name!) === undefined && Object.hasOwn(aliases, name!) ? aliases[name!]! : name!;
      nr = syscallNumber(archInfo.tableArch, kernelName);
      known = nr !== undefined;
      syscall = kernelName;
    }
  } else {
    syscall = name ?? `#${nr}`;
  }

  const decoded = decodeCodeField(f.get("code"));
  const rec: Omit<SeccompRecord, "line"> = { form, arch: archInfo.arch, syscall, known, action: decoded.action };
  if (archInfo.tableArch !== undefined) rec.tableArch = archInfo.tableArch;
  if (nr !== undefined) rec.nr = nr;
  if (decoded.code !== undefined) rec.code = decoded.code;
  if (decoded.errno !== undefined) rec.errno = decoded.errno;
  if (stamp.timeMs !== undefined) rec.timeMs = stamp.timeMs;
  if (stamp.timeText !== undefined) rec.timeText = stamp.timeText;
  if (stamp.serial !== undefined) rec.serial = stamp.serial;
  if (node !== undefined) rec.node = node;
  const pid = f.get("pid");
  if (pid !== undefined && /^\d+$/.test(pid)) rec.pid = Number(pid);
  for (const k of ["uid", "auid", "ses", "sig", "ip"] as const) {
    const v = f.get(k);
    if (v !== undefined) rec[k] = v;
  }
  const comm = f.get("comm");
  if (comm !== undefined) rec.comm = decodeAuditString(comm, interpreted);
  const exe = f.get("exe");
  if (exe !== undefined) rec.exe = decodeAuditString(exe, interpreted);
  const compat = f.get("compat");
  if (compat === "0" || compat === "1") rec.compat = compat === "1";
  return { kind: "seccomp", record: rec };
}

// ---------------------------------------------------------------------------------------------
// Reading a whole input

export interface ReadCounts {
  lines: number;
  seccompRecords: number;
  malformed: number;
  /** The first MAX_LINE_NUMBERS malformed line numbers. */
  malformedLines: number[];
  malformedReasons: Record<string, number>;
  otherRecords: number;
  otherRecordTypes: Record<string, number>;
  /** Lines that are not audit records at all (other kernel messages, ausearch's separators, blank lines). */
  otherLines: number;
  forms: Partial<Record<RecordForm, number>>;
}

const MAX_LINE_NUMBERS = 20;

/** Reads input in chunks of any size (lines may span chunks) and hands each SECCOMP record on. */
export class AuditLogReader {
  private readonly decoder = new TextDecoder("utf-8");
  private pending = "";
  private readonly counts: ReadCounts = {
    lines: 0, seccompRecords: 0, malformed: 0, malformedLines: [], malformedReasons: {},
    otherRecords: 0, otherRecordTypes: {}, otherLines: 0, forms: {},
  };

  constructor(private readonly onRecord: (r: SeccompRecord) => void) {}

  push(chunk: string | Uint8Array): void {
    this.pending += typeof chunk === "string" ? chunk : this.decoder.decode(chunk, { stream: true });
    let nl = this.pending.indexOf("\n");
    if (nl < 0) return;
    let start = 0;
    while (nl >= 0) {
      this.line(this.pending.slice(start, nl));
      start = nl + 1;
      nl = this.pending.indexOf("\n", start);
    }
    this.pending = this.pending.slice(start);
  }

  end(): ReadCounts {
    this.pending += this.decoder.decode();
    if (this.pending !== "") this.line(this.pending);
    this.pending = "";
    return this.counts;
  }

  private line(text: string): void {
    const c = this.counts;
    const lineNo = ++c.lines;
    const r = parseAuditLine(text);
    switch (r.kind) {
      case "seccomp":
        c.seccompRecords++;
        c.forms[r.record.form] = (c.forms[r.record.form] ?? 0) + 1;
        this.onRecord({ line: lineNo, ...r.record });
        break;
      case "other-record":
        c.otherRecords++;
        c.otherRecordTypes[r.type] = (c.otherRecordTypes[r.type] ?? 0) + 1;
        break;
      case "malformed":
        c.malformed++;
        if (c.malformedLines.length < MAX_LINE_NUMBERS) c.malformedLines.push(lineNo);
        c.malformedReasons[r.reason] = (c.malformedReasons[r.reason] ?? 0) + 1;
        break;
      default:
        c.otherLines++;
    }
  }
}

/** Every SECCOMP record of `text`, with the counts of what else it held. */
export function parseAuditLog(text: string): { records: SeccompRecord[]; counts: ReadCounts } {
  const records: SeccompRecord[] = [];
  const reader = new AuditLogReader((r) => records.push(r));
  reader.push(text);
  return { records, counts: reader.end() };
}

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

// ---------------------------------------------------------------------------------------------
// Output

/**
 * Sorted and deduplicated the way the seed's get_syscalls.sh printed them (`sort` in an
 * en_US.UTF-8 locale): letters and digits first, underscores only to break ties, so
 * setitimer < set_robust_list < setsid.
 */
export function sortSyscallNames(names: Iterable<string>): string[] {
  return [...new Set(names)].sort(collate);
}

/** The allow list as get_syscalls.sh printed it: names joined by commas, one line. */
export function formatList(names: readonly string[]): string {
  return names.join(",") + "\n";
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function processSummary(rows: readonly ProcessCount[], limit = 5): string {
  const shown = rows.slice(0, limit).map((p) => `${p.comm} (${p.exe}): ${plural(p.records, "record")}, ${plural(p.pids, "pid")}`);
  if (rows.length > limit) shown.push(`and ${rows.length - limit} more`);
  return shown.join("; ");
}

/** A policy snippet: a comment header, then one global_syscall_allow per arch (all but the first commented out). */
export function formatPolicy(report: AuditReport): string {
  const c = report.counts;
  const out: string[] = [
    "# pg_seccomp audit2allow: the syscalls that SECCOMP audit records name",
    `# source: ${report.source}`,
    `# records: ${c.seccompRecords} SECCOMP; kept ${c.kept} (${report.processes}${report.arch ? `, ${report.arch}` : ""}); ` +
      `filtered out ${c.filteredOut}; malformed lines ${c.malformedLines}; other audit records ${c.otherRecords}`,
  ];
  if (report.timeRange) out.push(`# time: ${report.timeRange.first} .. ${report.timeRange.last}`);
  if (report.processesSeen.length) out.push(`# processes: ${processSummary(report.processesSeen)}`);
  const actions = Object.entries(report.actions).map(([a, n]) => `${a} ${n}`).join(", ");
  if (actions) out.push(`# actions: ${actions}`);
  if (report.notListed.length) {
    out.push(`# not listed: ${report.notListed.map((n) => `${n.arch} ${n.syscall} (${plural(n.records, "record")})`).join(", ")}`);
  }
  const arches = ARCHES.filter((a) => report.allow[a]?.length);
  if (arches.length === 0) {
    out.push("# no record names a syscall of pg_seccomp's tables", "global_syscall_allow = ''");
    return out.join("\n") + "\n";
  }
  if (arches.length > 1) {
    out.push("# records of several arches: a policy has one global_syscall_allow; keep the line of the policy's arch");
  }
  arches.forEach((arch, i) => {
    const names = report.allow[arch]!;
    const records = report.syscalls.filter((s) => s.arch === arch).reduce((n, s) => n + s.records, 0);
    out.push(`# ${arch}: ${plural(names.length, "syscall")} in ${plural(records, "record")}`);
    const denied = report.denied[arch];
    if (denied?.length) out.push(`# denied when recorded (review before allowing): ${denied.join(", ")}`);
    out.push(`${i === 0 ? "" : "# "}global_syscall_allow = '${names.join(", ")}'`);
  });
  return out.join("\n") + "\n";
}

/** --stats: the counts, then records per syscall and per process, as psql prints tables. */
export function formatStats(report: AuditReport): string {
  const c = report.counts;
  const summary: Array<Record<string, Cell>> = [
    { item: "lines read", count: c.lines },
    { item: "SECCOMP records", count: c.seccompRecords },
    { item: `kept (${report.processes}${report.arch ? `, ${report.arch}` : ""})`, count: c.kept },
    { item: "filtered out: other processes", count: c.filteredOutByProcess },
    { item: "filtered out: other arches", count: c.filteredOutByArch },
    { item: "skipped: malformed lines", count: c.malformedLines },
    { item: "ignored: other audit records", count: c.otherRecords },
    { item: "ignored: other lines", count: c.otherLines },
    { item: "kept, not listable: unknown syscall", count: c.unknownSyscallRecords },
    { item: "kept, not listable: i386/x32/other arch", count: c.foreignAbiRecords },
  ];
  const syscalls = report.syscalls.map((s) => ({
    syscall: s.syscall,
    syscallnum: s.syscallnum,
    arch: s.arch,
    records: s.records,
    pids: s.pids,
    actions: Object.entries(s.actions).map(([a, n]) => (Object.keys(s.actions).length === 1 ? describeRecordedAction(a) : `${describeRecordedAction(a)} ${n}`)).join(", "),
  }));
  const processes = report.processesSeen.map((p) => ({ comm: p.comm, exe: p.exe, records: p.records, pids: p.pids, syscalls: p.syscalls }));
  const parts = [
    `${report.source}${report.timeRange ? `: ${report.timeRange.first} .. ${report.timeRange.last}` : ""}\n`,
    psqlTable(["item", "count"], summary),
    "\nPer syscall\n",
    psqlTable(["syscall", "syscallnum", "arch", "records", "pids", "actions"], syscalls),
    "\nPer process\n",
    psqlTable(["comm", "exe", "records", "pids", "syscalls"], processes),
  ];
  if (report.otherProcesses.length) {
    parts.push("\nFiltered out (other processes)\n", psqlTable(["comm", "exe", "records", "pids", "syscalls"], report.otherProcesses.map((p) => ({ ...p }))));
  }
  return parts.join("");
}

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

/** errno names for ERRNO(n) actions, for callers that print them. */
export function describeRecordedAction(action: string): string {
  const m = /^ERRNO\((\d+)\)$/.exec(action);
  return m ? `ERRNO(${m[1]} ${errnoName(Number(m[1]))})` : action;
}
