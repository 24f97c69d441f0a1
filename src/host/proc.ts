// Facts the kernel gives about a process under /proc: one parser for each file, and one reader
// that callers inject (status, the classifier, the supervisor, tests with a fake /proc).
//
// These files are the kernel's, generated on read and bounded, but some fields are the
// process's to choose: comm (/proc/PID/stat's second field, up to 15 bytes of anything, ")",
// spaces and newlines included; prctl(PR_SET_NAME) sets it) and the whole of cmdline (the
// process title a backend rewrites, embedding role and database names). The parsers below never
// let those fields shift the others, and cmdline is only ever shown, never decided on.

import { closeSync, openSync, readdirSync, readFileSync, readSync, readlinkSync } from "node:fs";
import { join } from "node:path";

// ---------------------------------------------------------------------------------------------
// /proc/PID/stat

export interface ProcStat {
  pid: number;
  /** comm, as the process set it (may hold spaces, parentheses and newlines). */
  comm: string;
  /** The state letter: R, S, D, T, t, Z, X, I. */
  state: string;
  ppid: number;
  /** Field 22, starttime in clock ticks since boot: with the pid, it names a process for its life. Absent in a truncated line. */
  start?: string;
}

/**
 * Parses /proc/PID/stat: "pid (comm) state ppid ... starttime ...". comm runs to the *last* ")"
 * of the text: the fields after it are numbers and one state letter, so nothing comm holds can
 * move them. Undefined when the text is not such a line.
 */
export function parseProcStat(text: string): ProcStat | undefined {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) return undefined;
  const rest = text.slice(close + 2).split(" ");
  const pid = Number(text.slice(0, open).trim());
  const ppid = Number(rest[1]);
  if (!Number.isInteger(pid) || !Number.isInteger(ppid) || rest[0] === undefined || rest[0] === "") return undefined;
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itrealvalue starttime
  const start = rest[19]?.trim();
  const out: ProcStat = { pid, comm: text.slice(open + 1, close), state: rest[0], ppid };
  if (start !== undefined && /^\d+$/.test(start)) out.start = start;
  return out;
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/status

export type SeccompModeName = "disabled" | "strict" | "filter";

export interface ProcStatus {
  name: string | null;
  ppid: number | null;
  /** Real uid. */
  uid: number | null;
  threads: number | null;
  noNewPrivs: boolean | null;
  /** The Seccomp: field: 0, 1 or 2. */
  seccomp: number | null;
  seccompMode: SeccompModeName | null;
  /** Seccomp_filters: (Linux 5.9+): how many filters the thread has. */
  seccompFilters: number | null;
  /** Tgid: the thread group (process) a thread belongs to. */
  tgid: number | null;
  /** Speculation_Store_Bypass: e.g. "thread force mitigated" (seccomp's default), "thread vulnerable". */
  speculationStoreBypass: string | null;
  /** CapEff as a bigint mask. */
  capEff: bigint | null;
  /** Signal masks (bit sig-1 for signal sig): blocked, ignored, caught. */
  sigBlk: bigint | null;
  sigIgn: bigint | null;
  sigCgt: bigint | null;
}

export function seccompModeName(n: number): SeccompModeName | null {
  return n === 0 ? "disabled" : n === 1 ? "strict" : n === 2 ? "filter" : null;
}

/** Parse /proc/PID/status (or /proc/PID/task/TID/status). Missing or malformed fields are null. */
export function parseProcStatus(text: string): ProcStatus {
  const f = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    // The first occurrence wins: Name: (comm) is the only field a process writes, and it comes first.
    if (i > 0 && !f.has(line.slice(0, i))) f.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  const int = (k: string): number | null => {
    const v = f.get(k);
    return v !== undefined && /^-?\d+$/.test(v) ? Number(v) : null;
  };
  const mask = (k: string): bigint | null => {
    const v = f.get(k);
    return v !== undefined && /^[0-9a-f]{1,32}$/i.test(v) ? BigInt(`0x${v}`) : null;
  };
  const seccomp = int("Seccomp");
  const nnp = int("NoNewPrivs");
  const uid = f.get("Uid")?.split(/\s+/)[0];
  return {
    name: f.get("Name") ?? null,
    ppid: int("PPid"),
    tgid: int("Tgid"),
    uid: uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : null,
    threads: int("Threads"),
    noNewPrivs: nnp === null ? null : nnp === 1,
    seccomp,
    seccompMode: seccomp === null ? null : seccompModeName(seccomp),
    seccompFilters: int("Seccomp_filters"),
    speculationStoreBypass: f.get("Speculation_Store_Bypass") ?? null,
    capEff: mask("CapEff"),
    sigBlk: mask("SigBlk"),
    sigIgn: mask("SigIgn"),
    sigCgt: mask("SigCgt"),
  };
}

/** Whether signal `sig` is set in a mask of /proc/PID/status; an unknown mask (null) counts as set. */
export function maskHas(mask: bigint | null, sig: number): boolean {
  return mask === null || (mask & (1n << BigInt(sig - 1))) !== 0n;
}

// ---------------------------------------------------------------------------------------------
// /proc/PID/cmdline

/** The most of a process title we read or show. */
export const TITLE_LIMIT = 4096;

/** A process title for display: cmdline capped, NULs as spaces. Never for a decision. */
export function titleFromCmdline(cmdline: string): string {
  return cmdline.slice(0, TITLE_LIMIT).replace(/\0+$/, "").replace(/\0/g, " ");
}

// ---------------------------------------------------------------------------------------------
// The process tree

/** The pids below `root` (children, grandchildren, ...), parents before children, given pid -> ppid. */
export function descendants(root: number, parentOf: ReadonlyMap<number, number>): number[] {
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentOf) {
    if (pid === root) continue;
    const list = children.get(ppid);
    if (list) list.push(pid);
    else children.set(ppid, [pid]);
  }
  const out: number[] = [];
  const queue = [root];
  const seen = new Set([root]);
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of (children.get(p) ?? []).sort((a, b) => a - b)) {
      if (seen.has(c)) continue;
      seen.add(c);
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The reader

/**
 * The files of /proc a caller reads, as text (undefined when the process is gone or the file
 * cannot be read). Tests inject a fake; `procReader()` reads a real /proc (or a copy of one).
 */
export interface ProcReader {
  stat(pid: number): string | undefined;
  status(pid: number | "self", tid?: number | string): string | undefined;
  cmdline(pid: number): string | undefined;
  /** /proc/PID/task/PID/children: the main thread's children, space-separated. */
  children(pid: number): string | undefined;
  /** The numeric entries of /proc (every pid), or of /proc/PID/task (every thread) when pid is given. */
  pids(pid?: number): string[];
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch {
    return undefined;
  }
}

/** The target of /proc/PID/NAME (exe, cwd), or undefined when it cannot be read (gone, or not ours to read). */
export function readProcLink(pid: number, name: "exe" | "cwd", procRoot = "/proc"): string | undefined {
  try {
    return readlinkSync(join(procRoot, String(pid), name));
  } catch {
    return undefined;
  }
}

/** A ProcReader over `procRoot` (plain reads: /proc files are the kernel's, generated on read, and never block). */
export function procReader(procRoot = "/proc"): ProcReader {
  const at = (pid: number | string, ...rest: string[]) => join(procRoot, String(pid), ...rest);
  return {
    stat: (pid) => readText(at(pid, "stat")),
    status: (pid, tid) => readText(tid === undefined ? at(pid, "status") : at(pid, "task", String(tid), "status")),
    cmdline: (pid) => readText(at(pid, "cmdline")),
    children: (pid) => readText(at(pid, "task", String(pid), "children")),
    pids: (pid) => {
      try {
        return readdirSync(pid === undefined ? procRoot : at(pid, "task")).filter((n) => /^\d+$/.test(n));
      } catch {
        return [];
      }
    },
  };
}

/** The machine's /proc. */
export const PROC: ProcReader = procReader();

/** The parsed /proc/PID/stat of `pid`, or undefined when it is gone. */
export function readProcStat(pid: number, proc: ProcReader = PROC): ProcStat | undefined {
  const text = proc.stat(pid);
  return text === undefined ? undefined : parseProcStat(text);
}

/** The start time of `pid` (/proc/PID/stat field 22), or undefined when it is gone. */
export function readStartTime(pid: number, proc: ProcReader = PROC): string | undefined {
  return readProcStat(pid, proc)?.start;
}

/** The parsed /proc/PID/status, or undefined when it is gone. */
export function readProcStatus(pid: number, proc: ProcReader = PROC, tid?: number | string): ProcStatus | undefined {
  const text = proc.status(pid, tid);
  return text === undefined ? undefined : parseProcStatus(text);
}

/** Parent pid and start time of `pid`, what names it for its life; undefined when it is gone (or its stat is cut short). */
export function readParentAndStart(pid: number, proc: ProcReader = PROC): { ppid: number; start: string } | undefined {
  const st = readProcStat(pid, proc);
  return st?.start === undefined ? undefined : { ppid: st.ppid, start: st.start };
}

/**
 * Now, in the unit of /proc/PID/stat's start time (clock ticks since boot; USER_HZ is 100 on
 * every Linux arch we support), rounded down: a process whose start time is below it was
 * forked before now.
 */
export function bootTicksNow(): number {
  const up = Number.parseFloat(readFileSync("/proc/uptime", "utf8").split(" ")[0] ?? "");
  if (!Number.isFinite(up)) throw new Error("/proc/uptime cannot be read");
  return Math.floor(up * 100);
}

/** The display title of `pid` ("" when it is gone). */
export function readTitle(pid: number, proc: ProcReader = PROC): string {
  return titleFromCmdline(proc.cmdline(pid) ?? "");
}

/** The children of `pid`'s main thread ([] when it is gone; children of its other threads are not listed). */
export function readChildren(pid: number, proc: ProcReader = PROC): number[] {
  return (proc.children(pid) ?? "").split(/\s+/).filter((c) => /^\d+$/.test(c)).map(Number);
}

/** pid -> ppid for every process. */
export function readProcessTree(proc: ProcReader = PROC): Map<number, number> {
  const tree = new Map<number, number>();
  for (const n of proc.pids()) {
    const st = readProcStat(Number(n), proc);
    if (st) tree.set(st.pid, st.ppid);
  }
  return tree;
}

/**
 * Bytes of a process's memory (/proc/PID/mem, which the kernel generates; a read of it does not
 * block), or undefined when they cannot be read. What they say is the process's to choose: use
 * them for nothing that decides whether a call is allowed.
 */
export function readProcessMemory(pid: number, addr: bigint, length: number): Buffer | undefined {
  let fd: number | undefined;
  try {
    fd = openSync(`/proc/${pid}/mem`, "r");
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, addr);
    return buf.subarray(0, n);
  } catch {
    return undefined;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const SHELL_PATH = Buffer.from("/bin/sh\0");
const SHELL_ARGV0 = Buffer.from("sh\0");

/**
 * Whether an execve(path, argv, ...) about to run in `pid` is glibc's popen()/system() starting
 * the shell: path "/bin/sh", argv[0] "sh" (glibc's spawn_process and do_system). Three bounded
 * reads of the caller's memory; x86_64 and aarch64 pointers are 8 bytes, little-endian.
 */
export function spawnsShell(pid: number, pathAddr: bigint, argvAddr: bigint): boolean {
  const path = readProcessMemory(pid, pathAddr, SHELL_PATH.length);
  if (!path || !path.equals(SHELL_PATH)) return false;
  const argv0 = readProcessMemory(pid, argvAddr, 8);
  if (!argv0 || argv0.length !== 8) return false;
  const name = readProcessMemory(pid, argv0.readBigUInt64LE(0), SHELL_ARGV0.length);
  return name !== undefined && name.equals(SHELL_ARGV0);
}

/**
 * Yama's `kernel.yama.ptrace_scope` (0 to 3), or undefined where the kernel has no Yama. At 1 and
 * above a process may open another's /proc/PID/mem only as its ancestor: a program a session
 * runs (dumpable again after its exec) is then out of other backends' reach.
 */
export function readYamaPtraceScope(procRoot = "/proc"): number | undefined {
  try {
    const n = Number(readFileSync(join(procRoot, "sys/kernel/yama/ptrace_scope"), "utf8").trim());
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}
