// Where the violation log goes besides (or instead of) its file: `run --log-to journald|syslog|file`.
//
//   journald  the journal's native protocol (systemd.journal-fields(7), "native protocol"): one
//             datagram to /run/systemd/journal/socket of KEY=value lines, with structured
//             fields SYSCALL, CONTEXT, ROLE, DATABASE, PID, ACTION, ERRNO, QUERY, PROCESS
//             (journalctl -t pg_seccomp SYSCALL=execve ...);
//   syslog    RFC 5424 to /dev/log, the record's fields as structured data [pg_seccomp@32473 ...];
//   file      the JSON-lines file `pg_seccomp log` and seccomp.violations read (the default).
//
// Everything in a record that comes from the server (process title, role, database, statement)
// is data: in the journal protocol a value with a newline uses the length-prefixed form, and in
// RFC 5424 parameter values '"', '\' and ']' are escaped and the free-text message has no
// control characters. A send that would block or fails is counted and dropped: the decision was
// already enforced, and the launcher must never wait on a log reader.

import { errnoName } from "../syscalls/errno.js";
import type { ViolationEvent } from "../host/violation-event.js";

export const LOG_TARGETS = ["file", "journald", "syslog"] as const;
export type LogTarget = (typeof LOG_TARGETS)[number];

/** Sockets; the environment may move them (tests, chroots). */
export const JOURNAL_SOCKET = process.env.PG_SECCOMP_JOURNAL_SOCKET ?? "/run/systemd/journal/socket";
export const SYSLOG_SOCKET = process.env.PG_SECCOMP_SYSLOG_SOCKET ?? "/dev/log";

/** Statements are cut to this many characters in journald and syslog records. */
const MAX_QUERY_CHARS = 4096;

/** "file", "journald,file": the targets, or a message saying which one is unknown. */
export function parseLogTargets(text: string): LogTarget[] | string {
  const names = text.split(",").map((s) => s.trim()).filter(Boolean);
  if (names.length === 0) return `--log-to: give one or more of ${LOG_TARGETS.join(", ")}`;
  for (const n of names) if (!(LOG_TARGETS as readonly string[]).includes(n)) return `--log-to: "${n}" is not one of ${LOG_TARGETS.join(", ")}`;
  return [...new Set(names)] as LogTarget[];
}

/** The one-line summary both sinks carry as the message. */
export function violationMessage(e: ViolationEvent): string {
  const who = [e.role && `role ${e.role}`, e.database && `database ${e.database}`].filter(Boolean).join(", ");
  const what = `${e.action}${e.errno ? ` ${errnoName(e.errno)}` : ""}${e.signal ? ` ${e.signal}` : ""}`;
  return `${e.syscall} (${what}) in pid ${e.pid} (${e.context}${who ? `, ${who}` : ""}): ${e.process}`;
}

/** syslog severity: a denied or killed call is a warning, a logged one a notice. */
function severity(e: ViolationEvent): number {
  return e.action === "log" || e.action === "allow" ? 5 : 4;
}

function fields(e: ViolationEvent): Array<[string, string]> {
  const f: Array<[string, string]> = [
    ["SYSCALL", e.syscall],
    ["SYSCALL_NR", String(e.nr)],
    ["CONTEXT", e.context],
    ["ACTION", e.action],
    ["PID", String(e.pid)],
    ["PROCESS", e.process],
  ];
  if (e.role !== undefined) f.push(["ROLE", e.role]);
  if (e.database !== undefined) f.push(["DATABASE", e.database]);
  if (e.errno !== undefined) f.push(["ERRNO", errnoName(e.errno) ?? String(e.errno)]);
  if (e.signal !== undefined) f.push(["SIGNAL", e.signal]);
  if (e.query !== undefined) f.push(["QUERY", e.query.slice(0, MAX_QUERY_CHARS)]);
  if (e.args.length) f.push(["ARGS", e.args.join(" ")]);
  return f;
}

/**
 * One journal native-protocol datagram: `KEY=value\n` for values without a newline, else
 * `KEY\n` + the value's length (64-bit little-endian) + the value + `\n`.
 */
export function journalDatagram(e: ViolationEvent, identifier = "pg_seccomp"): Buffer {
  const parts: Buffer[] = [];
  const add = (key: string, value: string) => {
    const v = Buffer.from(value, "utf8");
    if (!v.includes(0x0a)) {
      parts.push(Buffer.from(`${key}=`), v, Buffer.from("\n"));
      return;
    }
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(v.length));
    parts.push(Buffer.from(`${key}\n`), len, v, Buffer.from("\n"));
  };
  add("MESSAGE", violationMessage(e));
  add("PRIORITY", String(severity(e)));
  add("SYSLOG_IDENTIFIER", identifier);
  add("MESSAGE_ID", "5ecc0f17e1374a8c9d0e2b6f3a9c71d2"); // all pg_seccomp violation records
  for (const [k, v] of fields(e)) add(k, v);
  return Buffer.concat(parts);
}

/** An RFC 5424 PARAM-VALUE: '"', '\' and ']' escaped. */
function sdValue(v: string): string {
  return v.replace(/[\\"\]]/g, (c) => `\\${c}`);
}

/** Control characters as \xNN (the free-text part of a syslog line stays one line). */
function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/** Private enterprise number 32473 is the one RFC 5612 sets aside for documentation and examples. */
export const SD_ID = "pg_seccomp@32473";

/** One RFC 5424 message (facility daemon), as /dev/log takes it. */
export function syslogDatagram(e: ViolationEvent, hostname = "-", procId = String(process.pid), appName = "pg_seccomp"): Buffer {
  const pri = 3 * 8 + severity(e); // daemon
  const params = fields(e).map(([k, v]) => `${k.toLowerCase()}="${sdValue(v)}"`).join(" ");
  return Buffer.from(`<${pri}>1 ${e.time} ${hostname} ${appName} ${procId} violation [${SD_ID} ${params}] ${oneLine(violationMessage(e))}`, "utf8");
}

/**
 * The line the server's log gets (our stderr, which postgres shares: pg_ctl's -l file,
 * pg_ctlcluster's log) the first time the policy denies or kills a kind of call, so that
 * PostgreSQL's own message about a failed process has its cause beside it. One line: whatever
 * came from the server (title, role, program) has its control characters escaped.
 */
export function serverLogLine(e: ViolationEvent): string {
  const verb = e.action === "kill" ? "killed by the policy" : "denied by the policy";
  return oneLine(`pg_seccomp: ${verb}: ${violationMessage(e)}${e.program ? ` (program ${e.program})` : ""}`);
}
