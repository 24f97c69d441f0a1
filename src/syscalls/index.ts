// Syscall names and numbers for the architectures pg_seccomp supports.
// Pure data and lookups: no I/O, no kernel calls (hostArch() only reads process.arch).
//
// The tables are generated from the kernel's syscall tables by
// scripts/gen-syscall-tables.ts; see table-x86_64.ts / table-aarch64.ts.

import { AARCH64_TABLE, AARCH64_TABLE_INFO } from "./table-aarch64.js";
import { X86_64_TABLE, X86_64_TABLE_INFO } from "./table-x86_64.js";
import type { SeccompArch } from "../seccomp/index.js";

/** An architecture token: the seccomp ABI module (src/seccomp/arch.ts) defines them with their AUDIT_ARCH values. */
export type Arch = SeccompArch;
export const ARCHES: readonly Arch[] = Object.freeze(["x86_64", "aarch64"] as const);

export interface SyscallEntry {
  readonly name: string;
  readonly nr: number;
}

export type ResolveResult = { ok: true; nr: number } | { ok: false; message: string };

export interface SyscallTableInfo {
  readonly arch: Arch;
  /** Kernel release the table was generated from, e.g. "v6.18". */
  readonly kernelVersion: string;
  /** Kernel source files the table was generated from. */
  readonly sources: readonly string[];
  /** ABI column values of the kernel table that were selected. */
  readonly abis: readonly string[];
  readonly count: number;
  readonly maxNr: number;
}

/** True if `value` names a supported architecture ("x86_64" or "aarch64"). */
export function isArch(value: string): value is Arch {
  return (ARCHES as readonly string[]).includes(value);
}

/**
 * The architecture of the running Node process, in kernel naming.
 * `nodeArch` defaults to process.arch ("x64" -> "x86_64", "arm64" -> "aarch64").
 */
export function hostArch(nodeArch: string = process.arch): Arch {
  switch (nodeArch) {
    case "x64":
      return "x86_64";
    case "arm64":
      return "aarch64";
    default:
      throw new Error(
        `unsupported architecture "${nodeArch}": pg_seccomp supports x86_64 (Node "x64") and aarch64 (Node "arm64") only`,
      );
  }
}

// ---------------------------------------------------------------------------------------------
// Tables

interface Table {
  readonly info: SyscallTableInfo;
  readonly entries: readonly SyscallEntry[];
  readonly byName: ReadonlyMap<string, number>;
  readonly byNr: ReadonlyMap<number, string>;
  readonly names: readonly string[];
}

function buildTable(
  arch: Arch,
  rows: ReadonlyArray<readonly [string, number]>,
  info: { kernelVersion: string; sources: readonly string[]; abis: readonly string[] },
): Table {
  const entries = rows
    .map(([name, nr]) => Object.freeze({ name, nr }))
    .sort((a, b) => a.nr - b.nr);
  const byName = new Map<string, number>();
  const byNr = new Map<number, string>();
  for (const e of entries) {
    if (byName.has(e.name) || byNr.has(e.nr)) throw new Error(`syscall table for ${arch}: duplicate ${e.name}/${e.nr}`);
    byName.set(e.name, e.nr);
    byNr.set(e.nr, e.name);
  }
  const maxNr = entries.length ? entries[entries.length - 1]!.nr : -1;
  return {
    info: Object.freeze({
      arch,
      kernelVersion: info.kernelVersion,
      sources: Object.freeze([...info.sources]),
      abis: Object.freeze([...info.abis]),
      count: entries.length,
      maxNr,
    }),
    entries: Object.freeze(entries),
    byName,
    byNr,
    names: Object.freeze(entries.map((e) => e.name).sort()),
  };
}

const TABLES: Readonly<Record<Arch, Table>> = {
  x86_64: buildTable("x86_64", X86_64_TABLE, X86_64_TABLE_INFO),
  aarch64: buildTable("aarch64", AARCH64_TABLE, AARCH64_TABLE_INFO),
};

function table(arch: Arch): Table {
  const t = TABLES[arch];
  if (t === undefined) throw new Error(`unsupported architecture "${String(arch)}" (expected one of: ${ARCHES.join(", ")})`);
  return t;
}

/** The syscall number of `name` on `arch`, or undefined if the arch has no such syscall. */
export function syscallNumber(arch: Arch, name: string): number | undefined {
  return table(arch).byName.get(name);
}

/** The name of syscall number `nr` on `arch`, or undefined if the number is unassigned. */
export function syscallName(arch: Arch, nr: number): string | undefined {
  return table(arch).byNr.get(nr);
}

/** Every syscall of `arch`, sorted by number. */
export function allSyscalls(arch: Arch): ReadonlyArray<SyscallEntry> {
  return table(arch).entries;
}

/** Every syscall name of `arch`, sorted alphabetically. */
export function syscallNames(arch: Arch): readonly string[] {
  return table(arch).names;
}

/** The highest assigned syscall number on `arch`. */
export function maxSyscallNumber(arch: Arch): number {
  return table(arch).info.maxNr;
}

/** Where the table of `arch` comes from (kernel version, source files, ABIs) and its size. */
export function syscallTableInfo(arch: Arch): SyscallTableInfo {
  return table(arch).info;
}

// ---------------------------------------------------------------------------------------------
// Names that do not exist on every arch

/**
 * Well-known modern equivalents of syscalls that are missing on some arch (mostly aarch64, which
 * only has the "at"/"2"/"p" variants), and of 32-bit-ABI names that neither x86_64 nor aarch64
 * has. Only alternatives that exist on the target arch are offered.
 */
export const SYSCALL_REPLACEMENTS: Readonly<Record<string, readonly string[]>> = Object.freeze({
  // legacy calls absent from the generic (aarch64) table
  open: ["openat", "openat2"],
  creat: ["openat"],
  stat: ["newfstatat", "statx"],
  lstat: ["newfstatat", "statx"],
  access: ["faccessat", "faccessat2"],
  chmod: ["fchmodat", "fchmodat2"],
  chown: ["fchownat"],
  lchown: ["fchownat"],
  mkdir: ["mkdirat"],
  mknod: ["mknodat"],
  rmdir: ["unlinkat"],
  unlink: ["unlinkat"],
  link: ["linkat"],
  symlink: ["symlinkat"],
  readlink: ["readlinkat"],
  rename: ["renameat2", "renameat"],
  renameat: ["renameat2"],
  utime: ["utimensat"],
  utimes: ["utimensat"],
  futimesat: ["utimensat"],
  select: ["pselect6"],
  poll: ["ppoll"],
  pipe: ["pipe2"],
  dup2: ["dup3"],
  epoll_create: ["epoll_create1"],
  epoll_wait: ["epoll_pwait", "epoll_pwait2"],
  epoll_ctl_old: ["epoll_ctl"],
  epoll_wait_old: ["epoll_pwait"],
  eventfd: ["eventfd2"],
  signalfd: ["signalfd4"],
  inotify_init: ["inotify_init1"],
  getdents: ["getdents64"],
  fork: ["clone", "clone3"],
  vfork: ["clone", "clone3"],
  pause: ["ppoll", "rt_sigsuspend"],
  alarm: ["setitimer", "timer_create"],
  time: ["clock_gettime", "gettimeofday"],
  getpgrp: ["getpgid"],
  getrlimit: ["prlimit64"],
  setrlimit: ["prlimit64"],
  ustat: ["statfs"],
  // 32-bit-ABI names (i386/arm and friends) that 64-bit arches spell differently
  _llseek: ["lseek"],
  llseek: ["lseek"],
  _newselect: ["select", "pselect6"],
  mmap2: ["mmap"],
  fcntl64: ["fcntl"],
  stat64: ["newfstatat", "stat", "statx"],
  lstat64: ["newfstatat", "lstat", "statx"],
  fstat64: ["fstat"],
  fstatat64: ["newfstatat"],
  fstatat: ["newfstatat"],
  newfstat: ["fstat"],
  oldstat: ["newfstatat", "stat"],
  oldlstat: ["newfstatat", "lstat"],
  oldfstat: ["fstat"],
  statfs64: ["statfs"],
  fstatfs64: ["fstatfs"],
  truncate64: ["truncate"],
  ftruncate64: ["ftruncate"],
  sendfile64: ["sendfile"],
  fadvise64_64: ["fadvise64"],
  arm_fadvise64_64: ["fadvise64"],
  sync_file_range2: ["sync_file_range"],
  ugetrlimit: ["getrlimit", "prlimit64"],
  waitpid: ["wait4", "waitid"],
  umount: ["umount2"],
  readdir: ["getdents64"],
  olduname: ["uname"],
  oldolduname: ["uname"],
  socketcall: ["socket", "connect", "sendmsg"],
  ipc: ["semop", "msgsnd", "shmat"],
  recv: ["recvfrom"],
  send: ["sendto"],
  signal: ["rt_sigaction"],
  sigaction: ["rt_sigaction"],
  sigprocmask: ["rt_sigprocmask"],
  sigpending: ["rt_sigpending"],
  sigsuspend: ["rt_sigsuspend"],
  sigreturn: ["rt_sigreturn"],
  sgetmask: ["rt_sigprocmask"],
  ssetmask: ["rt_sigprocmask"],
  nice: ["setpriority"],
  stime: ["clock_settime", "settimeofday"],
  getuid32: ["getuid"],
  geteuid32: ["geteuid"],
  getgid32: ["getgid"],
  getegid32: ["getegid"],
  setuid32: ["setuid"],
  setgid32: ["setgid"],
  setreuid32: ["setreuid"],
  setregid32: ["setregid"],
  setresuid32: ["setresuid"],
  setresgid32: ["setresgid"],
  getresuid32: ["getresuid"],
  getresgid32: ["getresgid"],
  setfsuid32: ["setfsuid"],
  setfsgid32: ["setfsgid"],
  getgroups32: ["getgroups"],
  setgroups32: ["setgroups"],
  chown32: ["fchownat", "chown"],
  fchown32: ["fchown"],
  lchown32: ["fchownat", "lchown"],
  // 32-bit y2038 "_time64" variants: the 64-bit arches only have the plain call
  clock_gettime64: ["clock_gettime"],
  clock_settime64: ["clock_settime"],
  clock_adjtime64: ["clock_adjtime"],
  clock_getres_time64: ["clock_getres"],
  clock_nanosleep_time64: ["clock_nanosleep"],
  timer_gettime64: ["timer_gettime"],
  timer_settime64: ["timer_settime"],
  timerfd_gettime64: ["timerfd_gettime"],
  timerfd_settime64: ["timerfd_settime"],
  utimensat_time64: ["utimensat"],
  pselect6_time64: ["pselect6"],
  ppoll_time64: ["ppoll"],
  io_pgetevents_time64: ["io_pgetevents"],
  recvmmsg_time64: ["recvmmsg"],
  mq_timedsend_time64: ["mq_timedsend"],
  mq_timedreceive_time64: ["mq_timedreceive"],
  semtimedop_time64: ["semtimedop"],
  rt_sigtimedwait_time64: ["rt_sigtimedwait"],
  futex_time64: ["futex"],
  sched_rr_get_interval_time64: ["sched_rr_get_interval"],
});

/** Alternatives for `name` that exist on `arch` (possibly empty). */
export function syscallReplacements(arch: Arch, name: string): string[] {
  return (SYSCALL_REPLACEMENTS[name] ?? []).filter((alt) => alt !== name && syscallNumber(arch, alt) !== undefined);
}

function quoteList(names: readonly string[], conj: "or" | "and" = "or"): string {
  const q = names.map((n) => `"${n}"`);
  if (q.length <= 1) return q.join("");
  return `${q.slice(0, -1).join(", ")} ${conj} ${q[q.length - 1]}`;
}

const NAME_RE = /^[a-z_][a-z0-9_]*$/;

/**
 * Resolves a syscall name on one arch. On failure the message explains why, e.g.
 *   unknown syscall "opennat"; did you mean "openat"?
 *   syscall "stat" does not exist on aarch64 (it exists on x86_64); use "newfstatat" or "statx" instead
 */
export function resolveSyscall(arch: Arch, name: string): ResolveResult {
  const nr = syscallNumber(arch, name);
  if (nr !== undefined) return { ok: true, nr };

  if (name.startsWith("@")) {
    return { ok: false, message: `"${name}" is a syscall group, not a syscall name` };
  }

  const otherArches = ARCHES.filter((a) => a !== arch && syscallNumber(a, name) !== undefined);
  const alternatives = syscallReplacements(arch, name);
  const useHint = alternatives.length ? `; use ${quoteList(alternatives)} instead` : "";

  if (otherArches.length > 0) {
    return {
      ok: false,
      message: `syscall "${name}" does not exist on ${arch} (it exists on ${otherArches.join(", ")})${useHint}`,
    };
  }
  if (alternatives.length > 0) {
    // Known name of some other ABI (32-bit or legacy), absent from every supported arch.
    return {
      ok: false,
      message: `syscall "${name}" does not exist on ${arch} (it is not a syscall of any 64-bit arch pg_seccomp supports)${useHint}`,
    };
  }

  const suggestions = suggestNames(syscallNames(arch), name);
  if (suggestions.length > 0) {
    return { ok: false, message: `unknown syscall "${name}"; did you mean ${quoteList(suggestions)}?` };
  }
  if (!NAME_RE.test(name)) {
    return {
      ok: false,
      message: `invalid syscall name "${name}" (syscall names are lower-case letters, digits and "_")`,
    };
  }
  return { ok: false, message: `unknown syscall "${name}" (not in the ${arch} table of Linux ${table(arch).info.kernelVersion})` };
}

// ---------------------------------------------------------------------------------------------
// Did-you-mean

/** Optimal-string-alignment distance: Levenshtein plus adjacent transpositions, each costing 1. */
export function editDistance(a: string, b: string): number {
  if (a === b) return 0;
  if (a.length === 0) return b.length;
  if (b.length === 0) return a.length;
  const cols = b.length + 1;
  let prev2 = new Array<number>(cols).fill(0);
  let prev = Array.from({ length: cols }, (_, j) => j);
  let cur = new Array<number>(cols).fill(0);
  for (let i = 1; i <= a.length; i++) {
    cur[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, prev2[j - 2]! + 1);
      cur[j] = d;
    }
    [prev2, prev, cur] = [prev, cur, prev2];
  }
  return prev[b.length]!;
}

function maxDistanceFor(length: number): number {
  if (length <= 4) return 1;
  if (length <= 8) return 2;
  return 3;
}

/**
 * Generic did-you-mean: up to `max` (default 3) candidates close to `name`, best first.
 * Matching ignores case and treats "-" like "_". Returns [] when nothing is close, and never
 * returns `name` itself.
 */
export function suggestNames(candidates: Iterable<string>, name: string, max = 3): string[] {
  const norm = (s: string) => s.trim().toLowerCase().replace(/-/g, "_");
  const target = norm(name);
  if (target === "") return [];
  const limit = maxDistanceFor(target.length);
  const scored: Array<{ cand: string; d: number }> = [];
  const seen = new Set<string>();
  for (const cand of candidates) {
    if (cand === name || seen.has(cand)) continue;
    seen.add(cand);
    const c = norm(cand);
    // Cheap length filter before the quadratic distance.
    if (Math.abs(c.length - target.length) > limit) continue;
    const d = editDistance(target, c);
    if (d <= limit) scored.push({ cand, d });
  }
  if (scored.length === 0) return [];
  scored.sort((x, y) => x.d - y.d || (x.cand < y.cand ? -1 : x.cand > y.cand ? 1 : 0));
  // Only offer the closest candidates (ties with the best one).
  const best = scored[0]!.d;
  return scored.filter((s) => s.d === best).slice(0, Math.max(0, max)).map((s) => s.cand);
}
