// The kernel's audit records of seccomp kills (type=1326) from /dev/kmsg: one reader and one
// parser, for `run` (naming what killed the postmaster) and `learn --verify`. /dev/kmsg is the
// kernel's, not the server's: records are bounded, and the read never blocks (O_NONBLOCK).

import { closeSync, constants as fsc, openSync, readSync } from "node:fs";
import { syscallName, type Arch } from "../syscalls/index.js";

export interface KmsgKill {
  seq: number;
  pid: number;
  syscall: string;
}

/** Seccomp kill records (type=1326, sig=31) in kmsg text, after sequence number `after`. */
export function parseKmsgKills(records: string[], arch: Arch, after: number): KmsgKill[] {
  const out: KmsgKill[] = [];
  for (const r of records) {
    const seq = Number(/^\d+,(\d+),/.exec(r)?.[1] ?? -1);
    if (seq <= after || !/type=1326/.test(r) || !/\bsig=31\b/.test(r)) continue;
    const pid = Number(/\bpid=(\d+)/.exec(r)?.[1] ?? 0);
    const nr = /\bsyscall=(\d+)/.exec(r)?.[1];
    if (!pid || nr === undefined) continue;
    out.push({ seq, pid, syscall: syscallName(arch, Number(nr)) ?? `#${nr}` });
  }
  return out;
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
}

/**
 * Seccomp audit records after sequence number `after`. The record quotes the process's comm and
 * exe, which the process chooses (the kernel hex-encodes them only when they hold a space, a
 * quote or a control character), so the fields after them are taken from the record's *last*
 * `sig= arch= syscall= compat= ip= code=` run, which the kernel writes after both; pid and uid
 * come before them.
 */
export function parseKmsgSeccomp(records: string[], arch: Arch, after: number): KmsgSeccomp[] {
  const out: KmsgSeccomp[] = [];
  for (const r of records) {
    const seq = Number(/^\d+,(\d+),/.exec(r)?.[1] ?? -1);
    if (seq <= after || !/;audit: type=1326 /.test(r)) continue;
    const head = /audit\([\d.:]+\): auid=\d+ uid=(\d+) gid=\d+ ses=\d+ (?:subj=\S+ )?pid=(\d+) /.exec(r);
    const tails = [...r.matchAll(/ sig=\d+ arch=[0-9a-f]+ syscall=(\d+) compat=\d ip=0x[0-9a-f]+ code=0x([0-9a-f]+)(?=\s|$)/g)];
    const tail = tails.at(-1);
    if (!head || !tail) continue;
    const nr = Number(tail[1]);
    out.push({ seq, uid: Number(head[1]), pid: Number(head[2]), nr, syscall: syscallName(arch, nr) ?? `#${nr}`, code: Number.parseInt(tail[2]!, 16) >>> 0 });
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
    const out: string[] = [];
    while (out.length < max) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EPIPE") continue;
        break; // EAGAIN: nothing more now
      }
      if (n <= 0) break;
      out.push(this.buf.toString("utf8", 0, n));
    }
    return out;
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
  const out: string[] = [];
  const buf = Buffer.alloc(8192);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === "EPIPE") continue;
        break;
      }
      if (n <= 0) break;
      out.push(buf.toString("utf8", 0, n));
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

