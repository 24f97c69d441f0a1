// The kernel's audit records of seccomp kills (type=1326) from /dev/kmsg, for `run` (naming what
// killed the postmaster) and `learn --verify`: one reader here, and the records parsed by the one
// audit-record parser (audit-records.ts). /dev/kmsg is the kernel's, not the server's: records are
// bounded, and the read never blocks (O_NONBLOCK). comm= and exe= in them are the process's.

import { closeSync, constants as fsc, openSync, readSync } from "node:fs";
import { closeAuditReadLog, openAuditReadLog, readAuditRecords } from "../kernel/index.js";
import type { Arch } from "../syscalls/index.js";
import { parseAuditLine, type SeccompRecord } from "./audit-records.js";

export interface KmsgKill {
  seq: number;
  pid: number;
  syscall: string;
}

/** The sequence number of a /dev/kmsg record ("PRI,SEQ,TIME,FLAGS;MESSAGE"), or -1. */
export function kmsgSeq(record: string): number {
  return Number(/^\d+,(\d+),/.exec(record)?.[1] ?? -1);
}

/** The last sequence number among `records` (-1 for none). */
export function lastKmsgSeq(records: readonly string[]): number {
  let last = -1;
  for (const r of records) last = Math.max(last, kmsgSeq(r));
  return last;
}

/**
 * Seccomp kill records (type=1326, sig=31) among kmsg records, after sequence number `after`,
 * parsed by the one audit-record parser (audit-records.ts). A call of the server's own arch is
 * named from its table; another ABI's (i386, x32) as the record says, with its ABI.
 */
export function parseKmsgKills(records: readonly string[], arch: Arch, after: number): KmsgKill[] {
  const out: KmsgKill[] = [];
  for (const { seq, rec } of seccompRecordsAfter(records, after)) {
    if (rec.sig !== "31" || !rec.pid || rec.nr === undefined) continue;
    out.push({ seq, pid: rec.pid, syscall: rec.tableArch === arch ? rec.syscall : `${rec.arch} ${rec.syscall}` });
  }
  return out;
}

/** The seccomp audit records among kmsg records after sequence number `after`, with their numbers. */
function* seccompRecordsAfter(records: readonly string[], after: number): Generator<{ seq: number; rec: Omit<SeccompRecord, "line"> }> {
  for (const r of records) {
    const seq = kmsgSeq(r);
    if (seq <= after) continue;
    // The message's first line: continuation lines (" KEY=value") are the kernel's dictionary.
    const parsed = parseAuditLine(r.split("\n")[0]!);
    if (parsed.kind === "seccomp") yield { seq, rec: parsed.record };
  }
}

/** A seccomp audit record (type=1326): who, which call, and the filter's return value. */
export interface KmsgSeccomp {
  seq: number;
  pid: number;
  uid: number;
  nr: number;
  syscall: string;
  /** The filter's SECCOMP_RET_* value (`code=`). */
  code: number;
  /** The process's name and program as the record says (the process chose them: data only). */
  comm?: string;
  exe?: string;
}

/**
 * Seccomp audit records of the server's own arch after sequence number `after`, parsed by the one
 * audit-record parser. comm= and exe= are the process's choice, but the kernel hex-encodes them
 * whenever they hold a space, a quote or a control character, so they cannot bring a field of
 * their own (parseFields needs a space before every key).
 */
export function parseKmsgSeccomp(records: readonly string[], arch: Arch, after: number): KmsgSeccomp[] {
  const out: KmsgSeccomp[] = [];
  for (const { seq, rec } of seccompRecordsAfter(records, after)) {
    if (rec.tableArch !== arch || !rec.pid || rec.nr === undefined || rec.code === undefined || rec.uid === undefined || !/^\d+$/.test(rec.uid)) continue;
    out.push({
      seq, pid: rec.pid, uid: Number(rec.uid), nr: rec.nr, syscall: rec.syscall, code: rec.code,
      ...(rec.comm !== undefined ? { comm: rec.comm.slice(0, 64) } : {}), ...(rec.exe !== undefined ? { exe: rec.exe.slice(0, 4096) } : {}),
    });
  }
  return out;
}

/**
 * /dev/kmsg held open from now on: `take()` returns the records written since the last call (at
 * most `max`), never blocking. Records the kernel overwrote meanwhile are skipped.
 */
export class KmsgFollower {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(8192);

  constructor() {
    this.fd = openSync("/dev/kmsg", fsc.O_RDONLY | fsc.O_NONBLOCK);
    this.take(1_000_000); // what the buffer holds already is not ours
  }

  take(max = 10_000): string[] {
    return takeRecords(this.fd, this.buf, max);
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** Every record /dev/kmsg still holds (root only; [] when unreadable). */
export function readKmsg(): string[] {
  let fd: number;
  try {
    fd = openSync("/dev/kmsg", fsc.O_RDONLY | fsc.O_NONBLOCK);
  } catch {
    return [];
  }
  try {
    return takeRecords(fd, Buffer.alloc(8192), Number.POSITIVE_INFINITY);
  } finally {
    closeSync(fd);
  }
}

/**
 * Records from a non-blocking /dev/kmsg descriptor (one per read), at most `max`, until EAGAIN.
 * EPIPE says the kernel overwrote records since the last read: the next read goes on after them.
 */
function takeRecords(fd: number, buf: Buffer, max: number): string[] {
  const out: string[] = [];
  while (out.length < max) {
    let n: number;
    try {
      n = readSync(fd, buf, 0, buf.length, null);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "EPIPE") continue;
      break; // EAGAIN: nothing more now
    }
    if (n <= 0) break;
    out.push(buf.toString("utf8", 0, n));
  }
  return out;
}

/**
 * The kernel's seccomp audit records from now on, whichever way they can be read: the audit
 * netlink read group (complete; needs CAP_AUDIT_READ, as journald has it), else /dev/kmsg (rate
 * limited by printk, and empty once auditd takes the records), else none. `take()` never blocks.
 */
export interface SeccompRecordSource {
  readonly kind: "audit-netlink" | "kmsg";
  take(max?: number): KmsgSeccomp[];
  /** Records the kernel says it dropped before we read them (netlink queue overflows). */
  lost: number;
  close(): void;
}

/** A netlink record as the kernel log would print it, for the one parser ("audit: type=1326 audit(...): ..."). */
function netlinkAsKmsg(type: number, text: string, seq: number): string {
  return `5,${seq},0,-;audit: type=${type} ${text.split("\n")[0]}`;
}

class NetlinkSource implements SeccompRecordSource {
  readonly kind = "audit-netlink" as const;
  lost = 0;
  private seq = 0;
  private readonly buf = Buffer.alloc(65536);
  constructor(private readonly fd: number, private readonly arch: Arch) {}
  take(max = 10_000): KmsgSeccomp[] {
    const { records, lost } = readAuditRecords(this.fd, max, this.buf);
    this.lost += lost;
    const lines = records.filter((r) => r.type === 1326).map((r) => netlinkAsKmsg(r.type, r.text, ++this.seq));
    return parseKmsgSeccomp(lines, this.arch, -1);
  }
  close(): void {
    closeAuditReadLog(this.fd);
  }
}

class KmsgSource implements SeccompRecordSource {
  readonly kind = "kmsg" as const;
  lost = 0;
  private last = -1;
  constructor(private readonly follower: KmsgFollower, private readonly arch: Arch) {}
  take(max = 1000): KmsgSeccomp[] {
    const recs = parseKmsgSeccomp(this.follower.take(max), this.arch, this.last);
    for (const r of recs) this.last = Math.max(this.last, r.seq);
    return recs;
  }
  close(): void {
    this.follower.close();
  }
}

/** The best source there is, and a note when it is not the complete one. */
export function openSeccompRecordSource(arch: Arch): { source?: SeccompRecordSource; note?: string } {
  let why: string;
  try {
    return { source: new NetlinkSource(openAuditReadLog(), arch) };
  } catch (e) {
    why = (e as Error).message;
  }
  try {
    return {
      source: new KmsgSource(new KmsgFollower(), arch),
      note: `the audit netlink read group cannot be read (${why}; it needs CAP_AUDIT_READ): the kernel's seccomp records (kills, set_client_filter() denials) are read from /dev/kmsg, which rate-limits them: some may be missing from the violation log`,
    };
  } catch (e) {
    return { note: `neither the audit netlink read group (${why}) nor /dev/kmsg (${(e as Error).message}) can be read: calls the kernel kills or a set_client_filter() filter denies are not in the violation log` };
  }
}
