// The kernel's seccomp audit records (type=SECCOMP / 1326), in every form they come in:
//
//   audit.log (auditd, RAW or ENRICHED)   type=SECCOMP msg=audit(1732800000.123:456): auid=... syscall=41 ...
//   ausearch (raw, and -i interpreted)    ----, time->..., type=SECCOMP msg=audit(11/28/26 15:00:00.123:456) : ... syscall=socket
//   the kernel log (dmesg, /dev/kmsg,     [ 1234.567890] audit: type=1326 audit(1732800000.123:456): ...
//     syslog, journalctl -k)              Nov 28 15:00:00 host kernel: audit: type=1326 ...
//   journald's audit transport            2026-11-28T15:00:00+0000 host audit[1234]: SECCOMP auid=... (and -o json)
//
// One parser for audit2allow and for `run` and `learn --verify`, which read /dev/kmsg. Pure: text
// in, records out. Every field is the kernel's or a logging tool's, but comm= and exe= are names the
// server's user chose: they are bounded by the line and never interpreted.

import {
  AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_NAMES, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT, retData, seccompActionOf,
} from "../seccomp/index.js";
import { syscallName, syscallNumber, type Arch } from "../syscalls/index.js";

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

export function actionDenies(action: string): boolean {
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
 * `key=value` fields of a record's body. A quoted value (`comm="postgres"`) runs to its closing
 * quote: the kernel quotes only strings with no space, quote or control character in them (others
 * are hex), so a process's comm or exe can never hold a field of its own, and a forged one that
 * does is still read as one value. Any other value runs to the next ` key=` (ausearch -i prints
 * values with spaces unquoted: `comm=seccomp probe exe=/tmp/seccomp probe`; AppArmor labels read
 * `subj=name (enforce)`). The first occurrence of a key wins.
 */
export function parseFields(body: string): Map<string, string> {
  const fields = new Map<string, string>();
  const re = /(?:^|\s)([A-Za-z_][A-Za-z0-9_-]*)=/g;
  let key: string | undefined;
  let valueStart = 0;
  const set = (k: string, v: string) => {
    if (!fields.has(k)) fields.set(k, v);
  };
  for (let m = re.exec(body); m; m = re.exec(body)) {
    if (key !== undefined) set(key, body.slice(valueStart, m.index).trim());
    key = m[1]!;
    valueStart = m.index + m[0].length;
    if (body[valueStart] === '"') {
      const close = body.indexOf('"', valueStart + 1);
      const end = close < 0 ? body.length : close + 1;
      set(key, body.slice(valueStart, end));
      key = undefined;
      re.lastIndex = end;
    }
  }
  if (key !== undefined) set(key, body.slice(valueStart).trim());
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
export function interpretedTimeOrder(text: string): number | undefined {
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
