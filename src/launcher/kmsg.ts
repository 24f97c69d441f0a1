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

