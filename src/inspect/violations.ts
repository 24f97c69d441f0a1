// `pg_seccomp log`: the violation log of a running server (found through its run state) or of a
// given file, as a table a DBA reads, or JSON lines for scripts; -f follows it.
//
// The log is written by the launcher, but whoever can write the file (or give us --file) can put
// anything in it; and a line may be torn while the launcher writes. So each line is read with a
// length cap, decoded strictly, parsed, and validated into a ViolationEvent field by field;
// anything else is skipped and counted, never thrown. Printing escapes control characters
// (format.ts), since process titles and statements come from the server.

import { closeSync, constants, existsSync, fstatSync, openSync, readSync, statSync } from "node:fs";
import { runStatePlaces, serverRecords } from "../host/run-state.js";
import { dataDirForLookup } from "../host/data-dir.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { escapeControl, psqlTable } from "../render/format.js";
import { errnoName } from "../syscalls/errno.js";
import { UsageProblem } from "../errors.js";

export class LogNotFoundError extends UsageProblem {
  override name = "UsageError";
}

/** Where a log was found, and whose it must be when it comes from a record that is not ours or root's. */
export interface FoundLog {
  path: string;
  /** The file must belong to one of these uids (checked on the open descriptor). */
  owners?: number[];
  /** How it was found, for the reader: "running server", "last run". */
  how: string;
}

function ownerOf(path: string): number | undefined {
  try {
    return statSync(path).uid;
  } catch {
    return undefined;
  }
}

/**
 * The violation log of a server, by data directory or postmaster pid, whether it is running or
 * not (post mortem: the run state goes at exit, the last-run record stays). Looked for where a
 * launcher run as us, as root, or as the data directory's owner keeps its records
 * (runStatePlaces); a record from the owner's directory names a log that must be the owner's.
 */
export function findViolationLog(by: { dataDir?: string; pid?: number; file?: string }): FoundLog {
  if (by.file) return { path: by.file, how: "--file" };
  const dataDir = by.dataDir !== undefined ? dataDirForLookup(by.dataDir) : undefined;
  const owner = dataDir !== undefined ? ownerOf(dataDir) : by.pid !== undefined ? ownerOf(`/proc/${by.pid}`) : undefined;
  const places = runStatePlaces(owner);
  const lookup = { ...(dataDir !== undefined ? { dataDir } : {}), ...(by.pid !== undefined ? { pid: by.pid } : {}) };
  // The server that runs, else the one that ran last, wherever its launcher kept the record (a
  // root run's older record must not hide the running wrapper-started server's log).
  const rec = serverRecords(lookup, owner, false)[0];
  if (rec) {
    return {
      path: rec.logPath, ...(rec.owner !== 0 ? { owners: [rec.owner] } : {}),
      how: rec.running ? `running server (postmaster ${rec.postmasterPid})` : `last run (started ${rec.startedAt}, postmaster ${rec.postmasterPid})`,
    };
  }
  const what = dataDir !== undefined ? `for ${dataDir}` : `with postmaster pid ${by.pid}`;
  const looked = places.filter((p) => existsSync(p.dir)).map((p) => p.dir);
  throw new LogNotFoundError(
    `pg_seccomp run has no record of a server ${what} (running or not)` +
      (looked.length ? ` in ${looked.join(", ")}` : "") +
      `\nhint: a server started with run --log FILE: give that file with --file FILE` +
      (by.pid !== undefined && dataDir === undefined ? `; or give its data directory with -D` : ""),
  );
}

export function violationLogPath(by: { dataDir?: string; pid?: number; file?: string }): string {
  return findViolationLog(by).path;
}

/** The launcher's lines are well under 1 KiB plus the statement; longer lines are skipped. */
export const MAX_LINE_BYTES = 64 * 1024;

/**
 * Splits bytes into lines (without the "\n"). A line longer than the cap is not buffered: its
 * bytes are dropped as they come and it is counted in `tooLong`.
 */
export class LineSplitter {
  private parts: Buffer[] = [];
  private partBytes = 0;
  private overlong = false;
  tooLong = 0;

  constructor(private readonly maxBytes = MAX_LINE_BYTES) {}

  /** The complete lines `chunk` ends. `chunk` may be reused by the caller afterwards. */
  push(chunk: Buffer): Buffer[] {
    const lines: Buffer[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      this.append(chunk.subarray(start, nl < 0 ? chunk.length : nl));
      if (nl < 0) return lines;
      const line = this.take();
      if (line) lines.push(line);
      start = nl + 1;
    }
  }

  /** What follows the last newline: a torn line, or one still being written. */
  rest(): Buffer | undefined {
    return this.take();
  }

  private append(bytes: Buffer): void {
    if (this.overlong || bytes.length === 0) return;
    if (this.partBytes + bytes.length > this.maxBytes) {
      this.overlong = true;
      this.parts = [];
      this.partBytes = 0;
      return;
    }
    this.parts.push(Buffer.from(bytes));
    this.partBytes += bytes.length;
  }

  private take(): Buffer | undefined {
    if (this.overlong) {
      this.overlong = false;
      this.tooLong++;
      return undefined;
    }
    const line = this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts);
    this.parts = [];
    this.partBytes = 0;
    return line.length ? line : undefined;
  }
}

const ACTIONS = new Set<string>(["allow", "log", "launch", "error", "terminate", "kill", "trap"]);
/** As toISOString() writes it (the launcher's `time`). */
const ISO_TIME = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/;
const INT32_MAX = 2 ** 31 - 1;

const isInt = (v: unknown, min: number, max: number): v is number => typeof v === "number" && Number.isInteger(v) && v >= min && v <= max;

/**
 * A ViolationEvent built from known fields of a parsed line, each of the type the launcher
 * writes (and the SQL view casts to), or undefined. An optional field may be absent or null.
 */
export function toViolationEvent(v: unknown): ViolationEvent | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  const { time, pid, process, context, syscall, nr, args, action } = o;
  if (typeof time !== "string" || !ISO_TIME.test(time) || Number.isNaN(Date.parse(time))) return undefined;
  if (!isInt(pid, 1, INT32_MAX) || !isInt(nr, -(2 ** 31), INT32_MAX)) return undefined;
  if (typeof process !== "string" || typeof context !== "string" || typeof syscall !== "string") return undefined;
  if (!Array.isArray(args) || args.length > 6 || !args.every((a) => typeof a === "string")) return undefined;
  if (typeof action !== "string" || !ACTIONS.has(action)) return undefined;
  const e: ViolationEvent = { time, pid, process, context, syscall, nr, args: [...(args as string[])], action: action as ViolationEvent["action"] };
  for (const k of ["role", "database", "query", "signal", "program", "note"] as const) {
    const f = o[k];
    if (f === undefined || f === null) continue;
    if (typeof f !== "string") return undefined;
    e[k] = f;
  }
  if (o.decidedBy !== undefined && o.decidedBy !== null) {
    if (!isInt(o.decidedBy, 1, INT32_MAX)) return undefined;
    e.decidedBy = o.decidedBy;
  }
  if (o.count !== undefined && o.count !== null) {
    if (!isInt(o.count, 0, Number.MAX_SAFE_INTEGER)) return undefined;
    e.count = o.count;
  }
  if (o.errno !== undefined && o.errno !== null) {
    if (!isInt(o.errno, 0, 4095)) return undefined;
    e.errno = o.errno;
  }
  return e;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** One line of the log as a ViolationEvent, or undefined (invalid UTF-8, not JSON, not a record). */
export function parseViolationLine(line: Buffer | string): ViolationEvent | undefined {
  let text: string;
  let value: unknown;
  try {
    text = typeof line === "string" ? line : utf8.decode(line);
    // JSON.parse throws SyntaxError, or RangeError on nesting too deep for the stack.
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  return toViolationEvent(value);
}

export interface SkippedLines {
  /** Not valid UTF-8, not JSON, or not a violation record. */
  notRecord: number;
  /** Longer than MAX_LINE_BYTES (not read). */
  tooLong: number;
  /** The last line has no newline and is not a record: torn, or still being written. */
  torn: number;
}

export interface ViolationRead {
  events: ViolationEvent[];
  skipped: SkippedLines;
}

/** Feeds lines through parseViolationLine, counting what it skips. */
class RecordReader {
  readonly splitter = new LineSplitter();
  notRecord = 0;

  lines(chunk: Buffer): ViolationEvent[] {
    return this.parse(this.splitter.push(chunk));
  }

  parse(lines: Buffer[]): ViolationEvent[] {
    const out: ViolationEvent[] = [];
    for (const l of lines) {
      if (isBlank(l)) continue;
      const e = parseViolationLine(l);
      if (e) out.push(e);
      else this.notRecord++;
    }
    return out;
  }
}

function isBlank(line: Buffer): boolean {
  for (const b of line) if (b !== 0x20 && b !== 0x09 && b !== 0x0d) return false;
  return true;
}

class LogReadError extends UsageProblem {
  override name = "UsageError";
}

/**
 * Opens a log for reading; a missing file is an empty log. Only a regular file: --file could
 * name a FIFO or a device, which would block or never end.
 */
function openLog(path: string, owners?: readonly number[]): number | undefined {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    throw new LogReadError(`cannot read ${path}: ${code ?? (e as Error).message}`);
  }
  const st = fstatSync(fd);
  if (!st.isFile()) {
    closeSync(fd);
    throw new LogReadError(`${path} is not a regular file`);
  }
  // A log named by a record the server's user wrote must be that user's file: whoever reads it
  // (root) then shows nothing that user could not read anyway.
  if (owners && !owners.includes(st.uid)) {
    closeSync(fd);
    throw new LogReadError(`${path} is owned by uid ${st.uid}, not by the server's user (uid ${owners.join(", ")}): not read`);
  }
  return fd;
}

/** Every valid record of the log (the last `last` with that option), and what was skipped. */
export function readViolations(path: string, opts: { last?: number; owners?: readonly number[] } = {}): ViolationRead {
  const events: ViolationEvent[] = [];
  const reader = new RecordReader();
  let torn = 0;
  const fd = openLog(path, opts.owners);
  if (fd !== undefined) {
    const buf = Buffer.alloc(1 << 20);
    const keep = (es: ViolationEvent[]) => {
      for (const e of es) events.push(e);
      // Drop the head now and then, not per event: memory stays near 2 * last events.
      if (opts.last !== undefined && events.length > 2 * opts.last + 1024) events.splice(0, events.length - opts.last);
    };
    try {
      for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) keep(reader.lines(buf.subarray(0, n)));
    } finally {
      closeSync(fd);
    }
    const rest = reader.splitter.rest();
    if (rest && !isBlank(rest)) {
      const e = parseViolationLine(rest);
      if (e) keep([e]);
      else torn++;
    }
  }
  return {
    events: opts.last !== undefined ? events.slice(Math.max(0, events.length - opts.last)) : events,
    skipped: { notRecord: reader.notRecord, tooLong: reader.splitter.tooLong, torn },
  };
}

/** The notes a reader prints for skipped lines (none when nothing was skipped). */
export function skippedNotes(s: SkippedLines): string[] {
  const lines = (n: number) => `${n} line${n === 1 ? "" : "s"}`;
  const notes: string[] = [];
  if (s.notRecord) notes.push(`${lines(s.notRecord)} skipped (not a violation record)`);
  if (s.tooLong) notes.push(`${lines(s.tooLong)} skipped (longer than ${MAX_LINE_BYTES / 1024} KiB)`);
  if (s.torn) notes.push("the last line is incomplete (still being written, or torn); skipped");
  return notes;
}

export const VIOLATION_COLUMNS = ["time", "pid", "context", "role", "database", "syscall", "action", "statement"] as const;

export function violationRows(events: readonly ViolationEvent[]) {
  return events.map((e) => ({
    time: e.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
    pid: e.pid,
    context: e.context,
    role: e.role ?? "",
    database: e.database ?? "",
    syscall: e.syscall,
    action: (e.action === "error" || e.action === "terminate") && e.errno ? `${e.action}:${errnoName(e.errno)}${e.signal ? ` (${e.signal})` : ""}` : e.signal ? `${e.action} (${e.signal})` : e.action,
    // A program's kill names the program; a summary record says what it counts.
    statement: (e.query ?? (e.program !== undefined ? `program ${e.program}` : e.count !== undefined && e.note ? e.note : e.process)).replace(/\s+/g, " ").slice(0, 80),
  }));
}

/** The table `pg_seccomp log` prints; every cell has its control characters escaped. */
export function formatViolations(events: readonly ViolationEvent[]): string {
  return psqlTable(VIOLATION_COLUMNS, violationRows(events));
}

/**
 * `log -f`: one line per record, as a log is followed (no table, so no header per batch): the
 * table's columns, empty ones left out, control characters escaped.
 */
export function formatViolationLines(events: readonly ViolationEvent[]): string {
  return violationRows(events)
    .map((r) => {
      const who = [r.role, r.database].filter(Boolean).join("@");
      return escapeControl(`${r.time} pid ${r.pid} ${r.context}${who ? ` ${who}` : ""}: ${r.syscall} ${r.action}${r.statement ? `: ${r.statement}` : ""}`) + "\n";
    })
    .join("");
}

/**
 * Calls `onEvents` with the records of each complete line appended to the file after `from`,
 * and with what it skipped; returns a stop function. A file replaced (rotation: a new inode) or
 * truncated is read from its start. Reads at most 1 MiB at a time.
 */
export function followViolations(
  path: string,
  from: number,
  onEvents: (events: ViolationEvent[], skipped: SkippedLines) => void,
  intervalMs = 500,
  owners?: readonly number[],
): () => void {
  let offset = from;
  let inode: number | undefined;
  try {
    inode = statSync(path).ino;
  } catch {
    inode = undefined;
  }
  let reader = new RecordReader();
  const buf = Buffer.alloc(1 << 20);
  const timer = setInterval(() => {
    let fd: number | undefined;
    try {
      fd = openLog(path, owners);
    } catch {
      return;
    }
    if (fd === undefined) return;
    try {
      const st = fstatSync(fd);
      if (st.ino !== inode || st.size < offset) {
        inode = st.ino;
        offset = 0;
        reader = new RecordReader();
      }
      const before = { notRecord: reader.notRecord, tooLong: reader.splitter.tooLong };
      const events: ViolationEvent[] = [];
      while (offset < st.size) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, st.size - offset), offset);
        if (n <= 0) break;
        offset += n;
        events.push(...reader.lines(buf.subarray(0, n)));
      }
      const skipped = { notRecord: reader.notRecord - before.notRecord, tooLong: reader.splitter.tooLong - before.tooLong, torn: 0 };
      if (events.length || skipped.notRecord || skipped.tooLong) onEvents(events, skipped);
    } finally {
      closeSync(fd);
    }
  }, intervalMs);
  return () => clearInterval(timer);
}
