// A small typed wrapper over libc through koffi. This folder is the only place that loads koffi.
//
// Everything is lazy: importing this module touches neither koffi nor libc. The first call that
// needs a libc function loads koffi and binds just that function; a machine without koffi, without
// Linux, or without the symbol gets a KernelUnavailableError from that call, not from the import.
//
// All calls are synchronous koffi calls, so they run on the calling JS thread. That matters for
// seccomp: a filter installed without TSYNC applies to the calling thread only, and prctl/execve
// act on the calling thread too.

import { createRequire } from "node:module";
import type koffiDefault from "koffi";
import type { LibraryHandle, TypeObject } from "koffi";
import { KernelError, KernelUnavailableError } from "./errors.js";
import { hostKernelArch } from "./arch.js";

export type Koffi = typeof koffiDefault;
/** A bound native function as koffi returns it. */
export type NativeFunction = ReturnType<LibraryHandle["func"]>;

let koffiModule: Koffi | undefined;
let libcHandle: LibraryHandle | undefined;
const bound = new Map<string, NativeFunction>();

/** The koffi module, loaded on first use. Throws KernelUnavailableError when it cannot load. */
export function ffi(): Koffi {
  if (koffiModule) return koffiModule;
  if (process.platform !== "linux") {
    throw new KernelUnavailableError(`seccomp and the libc bindings need Linux; this is ${process.platform}`);
  }
  try {
    koffiModule = createRequire(import.meta.url)("koffi") as Koffi;
  } catch (e) {
    throw new KernelUnavailableError(`cannot load koffi (the FFI used to reach libc): ${(e as Error).message}`, {
      cause: e,
    });
  }
  return koffiModule;
}

function libc(): LibraryHandle {
  if (libcHandle) return libcHandle;
  const k = ffi();
  const errors: string[] = [];
  // glibc first; dlopen(NULL) covers musl and anything else Node itself is linked against.
  for (const name of ["libc.so.6", null] as const) {
    try {
      libcHandle = k.load(name);
      return libcHandle;
    } catch (e) {
      errors.push(`${name ?? "(main program)"}: ${(e as Error).message}`);
    }
  }
  throw new KernelUnavailableError(`cannot open the C library: ${errors.join("; ")}`);
}

/** Bind (once) a libc function from a C-like prototype; `name` is only for the error message. */
export function libcFunction(name: string, prototype: string): NativeFunction {
  const hit = bound.get(prototype);
  if (hit) return hit;
  let f: NativeFunction;
  try {
    f = libc().func(prototype);
  } catch (e) {
    if (e instanceof KernelUnavailableError) throw e;
    throw new KernelUnavailableError(`libc function ${name}() is not available: ${(e as Error).message}`, { cause: e });
  }
  bound.set(prototype, f);
  return f;
}

/** True when koffi loads and libc opens; never throws. `reason` says why not. */
export function libcAvailable(): { ok: true } | { ok: false; reason: string } {
  try {
    libc();
    return { ok: true };
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
}

// ---------------------------------------------------------------------------------------------
// errno

/** The calling thread's errno as libc left it after the last koffi call. */
export function lastErrno(): number {
  return ffi().errno();
}

/** Set the calling thread's errno (e.g. to 0 before a call whose -1 may be legitimate). */
export function setErrno(value: number): void {
  ffi().errno(value);
}

/** Throw a KernelError for `name` when `ret` is -1 (libc convention); otherwise return `ret`. */
function check(name: string, ret: number, detail?: (errno: number) => string | undefined): number {
  if (ret === -1) {
    const e = lastErrno();
    throw new KernelError(name, e, detail?.(e));
  }
  return ret;
}

// ---------------------------------------------------------------------------------------------
// syscall(2)

/** Reduce a number or bigint to the unsigned 64-bit value a register will hold. */
export function u64(v: bigint | number): bigint {
  if (typeof v === "number") {
    if (!Number.isSafeInteger(v)) throw new RangeError(`syscall argument ${v} is not a safe integer; pass a bigint`);
    v = BigInt(v);
  }
  return BigInt.asUintN(64, v);
}

let u64Type: TypeObject | undefined;
function syscallFn(): { fn: NativeFunction; u64: TypeObject } {
  const fn = libcFunction("syscall", "long syscall(long number, ...)");
  u64Type ??= ffi().type("uint64_t");
  return { fn, u64: u64Type };
}

/**
 * A preconfigured invoker of libc's variadic `long syscall(long, ...)`, always with exactly six
 * uint64_t variadic arguments. Koffi caches the last variadic signature it prepared, so calling
 * this repeatedly with the same shape allocates no native call descriptors; use it where the
 * caller must stay quiet (e.g. right after installing a filter). Arguments must already be
 * unsigned 64-bit bigints (see u64()). The result is libc's: -1 with errno set on failure.
 * koffi returns a number when the value fits in a double exactly, a bigint otherwise.
 */
export type RawSyscall = (
  nr: number,
  a0: bigint,
  a1: bigint,
  a2: bigint,
  a3: bigint,
  a4: bigint,
  a5: bigint,
) => number | bigint;

export function rawSyscall(): RawSyscall {
  const { fn, u64: T } = syscallFn();
  return (nr, a0, a1, a2, a3, a4, a5) => fn(nr, T, a0, T, a1, T, a2, T, a3, T, a4, T, a5) as number | bigint;
}

/**
 * syscall(2) with up to six arguments, each passed as a full 64-bit register value (negative
 * bigints are taken modulo 2^64, so -1n and 0xffffffffffffffffn are the same). `ret` is the raw
 * return as a signed bigint; `errno` is 0 unless ret is -1.
 */
export function syscall6(nr: number, args: readonly bigint[] = []): { ret: bigint; errno: number } {
  if (!Number.isInteger(nr) || nr < 0) throw new RangeError(`bad syscall number ${nr}`);
  if (args.length > 6) throw new RangeError(`a syscall takes at most 6 arguments, got ${args.length}`);
  const a = [0n, 0n, 0n, 0n, 0n, 0n];
  args.forEach((v, i) => (a[i] = u64(v)));
  const call = rawSyscall();
  setErrno(0);
  const r = call(nr, a[0]!, a[1]!, a[2]!, a[3]!, a[4]!, a[5]!);
  const ret = typeof r === "bigint" ? BigInt.asIntN(64, r) : BigInt(r);
  return { ret, errno: ret === -1n ? lastErrno() : 0 };
}

// ---------------------------------------------------------------------------------------------
// Memory helpers

/** The address of a Buffer's (off-heap, non-moving) storage, for structs that hold pointers. */
export function addressOf(buf: Uint8Array): bigint {
  return ffi().address(buf) as bigint;
}

// ---------------------------------------------------------------------------------------------
// Thin wrappers

/** prctl(2); throws KernelError on -1. Extra arguments default to 0. */
export function prctl(option: number, a2: bigint | number = 0, a3: bigint | number = 0, a4: bigint | number = 0, a5: bigint | number = 0): number {
  const f = libcFunction("prctl", "int prctl(int option, ...)");
  const T = "unsigned long";
  return check(`prctl(${option})`, f(option, T, u64(a2), T, u64(a3), T, u64(a4), T, u64(a5)) as number);
}

/** write(2) of buf[offset, offset+length) to fd; returns bytes written; throws on -1. */
export function write(fd: number, buf: Uint8Array, offset = 0, length = buf.length - offset): number {
  if (offset < 0 || length < 0 || offset + length > buf.length) throw new RangeError("write: range outside buffer");
  const f = libcFunction("write", "long write(int fd, const void *buf, size_t count)");
  const view = offset === 0 && length === buf.length ? buf : buf.subarray(offset, offset + length);
  return check("write", Number(f(fd, view, length)));
}

/** close(2); throws on -1. */
export function close(fd: number): void {
  const f = libcFunction("close", "int close(int fd)");
  check("close", f(fd) as number);
}

const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Set or clear FD_CLOEXEC on fd. */
export function setCloexec(fd: number, on: boolean): void {
  const f = libcFunction("fcntl", "int fcntl(int fd, int cmd, ...)");
  const flags = check(`fcntl(${fd}, F_GETFD)`, f(fd, F_GETFD) as number);
  const next = on ? flags | FD_CLOEXEC : flags & ~FD_CLOEXEC;
  if (next !== flags) check(`fcntl(${fd}, F_SETFD)`, f(fd, F_SETFD, "int", next) as number);
}

/** Whether fd has FD_CLOEXEC set; throws (EBADF) for a closed fd. */
export function getCloexec(fd: number): boolean {
  const f = libcFunction("fcntl", "int fcntl(int fd, int cmd, ...)");
  return (check(`fcntl(${fd}, F_GETFD)`, f(fd, F_GETFD) as number) & FD_CLOEXEC) !== 0;
}

/**
 * ioctl(2) with a pointer argument (the buffer is passed by address and may be written by the
 * kernel). Declared non-variadic, `int ioctl(int, unsigned long, void *)`, which is ABI-identical
 * on x86_64 and aarch64 Linux, so it can also be called through koffi's `.async` on a worker.
 * Returns the raw result; `errno` is meaningful only when `ret` is -1.
 */
export function ioctlRaw(fd: number, request: number, arg: Uint8Array | null): { ret: number; errno: number } {
  const f = libcFunction("ioctl", "int ioctl(int fd, unsigned long request, void *arg)");
  setErrno(0);
  const ret = f(fd, request, arg) as number;
  return { ret, errno: ret === -1 ? lastErrno() : 0 };
}

/** The libc ioctl binding itself, for `.async` use by a supervisor. */
export function ioctlFunction(): NativeFunction {
  return libcFunction("ioctl", "int ioctl(int fd, unsigned long request, void *arg)");
}

/**
 * exit_group(2) straight away: no exit handlers, no Node teardown, no flushing of stdio
 * streams. The only syscall it makes is exit_group.
 */
export function exitGroup(code: number): never {
  const nr = hostKernelArch().nr.exit_group;
  rawSyscall()(nr, u64(code), 0n, 0n, 0n, 0n, 0n);
  // exit_group does not return; if a filter made it fail, there is nothing sane left to do.
  throw new Error("exit_group returned");
}

/** pidfd_open(2): a pidfd for `pid`. */
export function pidfdOpen(pid: number, flags = 0): number {
  const r = syscall6(hostKernelArch().nr.pidfd_open, [BigInt(pid), BigInt(flags)]);
  if (r.ret < 0n) throw new KernelError(`pidfd_open(${pid})`, r.errno);
  return Number(r.ret);
}

/**
 * pidfd_getfd(2): duplicate file descriptor `targetFd` of the process behind `pidfd` into this
 * process (with FD_CLOEXEC). Needs ptrace-attach rights over the target (root, or same uid and
 * a permissive Yama setting).
 */
export function pidfdGetFd(pidfd: number, targetFd: number): number {
  const r = syscall6(hostKernelArch().nr.pidfd_getfd, [BigInt(pidfd), BigInt(targetFd), 0n]);
  if (r.ret < 0n) throw new KernelError(`pidfd_getfd(${targetFd})`, r.errno);
  return Number(r.ret);
}

// ---------------------------------------------------------------------------------------------
// Signals

const SIG_DFL = 0n;
const SIG_SETMASK = 2;

/** Reset `signal` to SIG_DFL (Node ignores SIGPIPE and SIGXFSZ, and ignored stays ignored across execve). */
export function resetSignalToDefault(signal: number): void {
  const f = libcFunction("signal", "uint64_t signal(int sig, uint64_t handler)");
  const r = f(signal, SIG_DFL) as number | bigint;
  // SIG_ERR is (void *)-1.
  if (BigInt.asUintN(64, BigInt(r)) === 0xffffffffffffffffn) {
    throw new KernelError(`signal(${signal}, SIG_DFL)`, lastErrno());
  }
}

/** Empty the calling thread's signal mask. */
export function clearSignalMask(): void {
  const f = libcFunction("sigprocmask", "int sigprocmask(int how, const void *set, void *oldset)");
  check("sigprocmask", f(SIG_SETMASK, Buffer.alloc(128), null) as number);
}

// ---------------------------------------------------------------------------------------------
// execve

export interface ExecveOptions {
  /**
   * Descriptors the new program must inherit; their FD_CLOEXEC flag is cleared first. Node
   * sets FD_CLOEXEC on 0, 1 and 2 at startup, so the default [0, 1, 2] is what makes the
   * program see stdin/stdout/stderr at all. Descriptors that are not open are skipped.
   */
  inheritFds?: readonly number[];
  /** Reset SIGPIPE and SIGXFSZ (ignored by Node) to default and empty the signal mask. Default true. */
  resetSignals?: boolean;
}

/**
 * execve(2) from the calling thread (call it from the main thread: the kernel kills every other
 * thread of the process, which is how Node's helper threads go away). Returns only by throwing
 * a KernelError. Note that once a seccomp filter is installed, every syscall made here (fcntl,
 * rt_sigaction, rt_sigprocmask, execve) must be allowed by it; do the preparation first by
 * calling prepareForExec() before installing the filter if that is a concern.
 */
export function execve(path: string, argv: readonly string[], envp: readonly string[], opts: ExecveOptions = {}): never {
  const f = libcFunction("execve", "int execve(const char *path, const char **argv, const char **envp)");
  prepareForExec(opts);
  const a: (string | null)[] = [...argv, null];
  const e: (string | null)[] = [...envp, null];
  f(path, a, e);
  throw new KernelError(`execve(${JSON.stringify(path)})`, lastErrno());
}

/** The fd and signal preparation execve() does; idempotent, so it may be done early. */
export function prepareForExec(opts: ExecveOptions = {}): void {
  for (const fd of opts.inheritFds ?? [0, 1, 2]) {
    try {
      setCloexec(fd, false);
    } catch (err) {
      if (!(err instanceof KernelError && err.code === "EBADF")) throw err;
    }
  }
  if (opts.resetSignals ?? true) {
    resetSignalToDefault(13); // SIGPIPE
    resetSignalToDefault(25); // SIGXFSZ
    clearSignalMask();
  }
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

/**
 * The pid at the other end of a Unix socket that process `pid` holds as `fd` (SO_PEERCRED,
 * as the kernel recorded it at connect time): the socket is copied here with pidfd_getfd (needs
 * ptrace access to `pid`), asked, and closed.
 */
export function socketPeerPid(pid: number, fd: number): number {
  const pidfd = pidfdOpen(pid);
  let copy: number;
  try {
    copy = pidfdGetFd(pidfd, fd);
  } finally {
    close(pidfd);
  }
  try {
    const f = libcFunction("getsockopt", "int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)");
    const cred = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
    const len = [12];
    check("getsockopt", f(copy, SOL_SOCKET, SO_PEERCRED, cred, len) as number);
    return cred.readInt32LE(0);
  } finally {
    close(copy);
  }
}
