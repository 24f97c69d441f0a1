// Reading the seccomp filters the kernel holds for another process, through ptrace(2).
//
// PTRACE_SECCOMP_GET_FILTER only works on a tracee in a ptrace-stop, so seccompFilters():
//   1. PTRACE_SEIZE     attaches without stopping the target (no SIGSTOP is sent);
//   2. PTRACE_INTERRUPT asks for a stop;
//   3. waitid(P_PID, pid, WSTOPPED | __WALL | WNOHANG), polled, until the stop is reported. Not
//      waitpid: that also reaps an exit, and a target that is our own child would then vanish
//      under Node's feet (its 'exit' event never fires). Polling means a target stuck in
//      uninterruptible sleep gives ETIMEDOUT instead of hanging the caller;
//   4. PTRACE_SECCOMP_GET_FILTER for index 0, 1, ... until ENOENT (each once with data=NULL for
//      the length, once with a buffer of 8 * length bytes);
//   5. PTRACE_DETACH, always (try/finally), re-injecting a signal the stop intercepted.
// A target that dies while attached is handed back to its parent: the parent of a traced
// process hears of its death only after the tracer has waited for it, so unless the target is
// our own child we reap it as its tracer (the kernel then notifies the real parent).
//
// The target is paused from step 2 to step 5: about 0.1-0.5 ms (measured on Linux 6.18). A
// blocking system call it was in is interrupted and restarted; a few (epoll_wait, semop,
// sigtimedwait, ...) return EINTR instead, as after SIGSTOP/SIGCONT. PostgreSQL retries on
// EINTR everywhere (it lives on signals). A call blocked in a seccomp user notification is
// interrupted too: the supervisor's pending notification becomes invalid (its NOTIF_SEND gets
// ENOENT) and the call is notified afresh when the target resumes, unless the filter was
// installed with SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV and the notification was already
// received, in which case the stop waits for the supervisor's answer.
//
// Requirements (else KernelError): CAP_SYS_ADMIN and the caller itself not under seccomp
// (EACCES from PTRACE_SECCOMP_GET_FILTER), ptrace rights over the target (EPERM from
// PTRACE_SEIZE; also when it is already traced, e.g. by strace or gdb), a kernel with
// CONFIG_CHECKPOINT_RESTORE (EINVAL for a target in filter mode). A filter that is not classic
// BPF gives EMEDIUMTYPE. Filters are per thread: this reads the filters of the thread whose tid
// is `pid` (the main thread, for a process id).

import { closeSync, openSync, readFileSync, readSync } from "node:fs";
import { decodeProgram, encodeProgram, type Insn } from "../bpf/insn.js";
import { syscallNumber } from "../syscalls/index.js";
import { hostKernelArch } from "./arch.js";
import { findSyscallInstruction, imageBase, isSyscallInstruction, programCounter, stackPointer, syscallRegisterLayout, syscallRegisters, syscallResult, type SyscallRegisterLayout } from "./syscall-regs.js";
import { KernelError } from "./errors.js";
import { addressOf, lastErrno, libcFunction, setErrno, syscall6 } from "./libc.js";

export const PTRACE_DETACH = 17;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_INTERRUPT = 0x4207;
export const PTRACE_SECCOMP_GET_FILTER = 0x420c;
/** wait option: every kind of child, threads included, and tracees that are not children. */
export const WALL = 0x40000000;
export const WNOHANG = 1;
export const WSTOPPED = 2;
export const P_PID = 1;
/** siginfo si_code of a ptrace stop / a job-control stop. */
export const CLD_TRAPPED = 4;
export const CLD_STOPPED = 5;
/** The event a PTRACE_INTERRUPT stop (or a group-stop of a seized tracee) carries. */
export const PTRACE_EVENT_STOP = 128;

const EPERM = 1;
const ENOENT = 2;
const ESRCH = 3;
const EINTR = 4;
const ECHILD = 10;
const EACCES = 13;
const EINVAL = 22;
const ETIMEDOUT = 110;
const EMEDIUMTYPE = 124;
const SIGTRAP = 5;

export interface SeccompFiltersOptions {
  /** Give up waiting for the target to stop after this long (default 2000 ms): ETIMEDOUT. */
  timeoutMs?: number;
}

let nrCache: number | undefined;
function ptrace(request: number, pid: number, addr: bigint, data: bigint): { ret: bigint; errno: number } {
  nrCache ??= syscallNumber(hostKernelArch().name, "ptrace")!;
  return syscall6(nrCache, [BigInt(request), BigInt(pid), addr, data]);
}

const WAITID = "int waitid(int idtype, int id, void *infop, int options)";
const WAITPID = "int waitpid(int pid, void *status, int options)";

/** waitid(2) once; `info` is a zeroed siginfo_t (128 bytes); ret 0 or -1 with errno. */
function waitid(pid: number, info: Buffer, options: number): { ret: number; errno: number } {
  const f = libcFunction("waitid", WAITID);
  info.fill(0);
  setErrno(0);
  const ret = f(P_PID, pid, info, options) as number;
  return { ret, errno: ret === -1 ? lastErrno() : 0 };
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

/** State letter and parent of a process from /proc/PID/stat, or undefined when it is gone. */
function procState(pid: number): { state: string; ppid: number } | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, "utf8");
    const rest = s.slice(s.lastIndexOf(")") + 2).split(" ");
    return { state: rest[0] ?? "?", ppid: Number(rest[1]) };
  } catch {
    return undefined;
  }
}

const dead = (st: { state: string } | undefined): boolean => st === undefined || st.state === "Z" || st.state === "X";

/**
 * A ptrace stop as waitid(2) reports it: si_code CLD_TRAPPED (or CLD_STOPPED) and si_status the
 * stop's exit code, signal | event << 8 (the part waitpid's status carries above bit 8). Pure.
 */
export function decodeStopInfo(info: Uint8Array): { pid: number; code: number; signal: number; event: number } {
  const b = Buffer.from(info.buffer, info.byteOffset, info.byteLength);
  // siginfo_t on 64-bit Linux: si_signo, si_errno, si_code, (pad), then _sigchld: si_pid, si_uid, si_status.
  const status = b.readInt32LE(24);
  return { pid: b.readInt32LE(16), code: b.readInt32LE(8), signal: status & 0xff, event: (status >> 8) & 0xff };
}

/** Decode a waitpid(2) status the way <sys/wait.h>'s macros do. Pure. */
export function decodeWaitStatus(
  status: number,
): { kind: "exited"; code: number } | { kind: "signaled"; signal: number } | { kind: "stopped"; signal: number; event: number } | { kind: "other" } {
  const low = status & 0x7f;
  if (low === 0) return { kind: "exited", code: (status >> 8) & 0xff };
  if ((status & 0xff) === 0x7f) return { kind: "stopped", signal: (status >> 8) & 0xff, event: (status >>> 16) & 0xff };
  if (low !== 0x7f) return { kind: "signaled", signal: low };
  return { kind: "other" };
}

/** What the wait saw: a stop (with the signal to re-inject on detach, 0 if none), the target's end, or nothing in time. */
type StopResult = { kind: "stopped"; injectSignal: number } | { kind: "dead" } | { kind: "timeout" };

function waitForStop(pid: number, timeoutMs: number): StopResult {
  const info = Buffer.alloc(128);
  const deadline = Date.now() + timeoutMs;
  let pause = 0.02;
  for (let polls = 0; ; polls++) {
    // No WEXITED: an exit is never consumed here (see the header).
    const r = waitid(pid, info, WSTOPPED | WALL | WNOHANG);
    if (r.ret === -1) {
      if (r.errno === EINTR) continue;
      if (r.errno === ECHILD) return { kind: "dead" };
      throw new KernelError(`waitid(P_PID, ${pid})`, r.errno);
    }
    const s = decodeStopInfo(info);
    if (s.pid === pid && (s.code === CLD_TRAPPED || s.code === CLD_STOPPED)) {
      // PTRACE_EVENT_STOP: our interrupt, or a group-stop (the target was stopped anyway).
      if (s.event === PTRACE_EVENT_STOP) return { kind: "stopped", injectSignal: 0 };
      // A signal-delivery-stop: a signal arrived first. We may work in this stop too; the
      // signal must then be delivered when we let go. (SIGTRAP with an event is another ptrace event.)
      if (s.event === 0) return { kind: "stopped", injectSignal: s.signal };
      return { kind: "stopped", injectSignal: s.signal === SIGTRAP ? 0 : s.signal };
    }
    if (polls >= 2 && dead(procState(pid))) return { kind: "dead" };
    if (Date.now() >= deadline) return { kind: "timeout" };
    sleepMs(pause);
    pause = Math.min(pause * 2, 5);
  }
}

/**
 * The target died while we were attached: its parent hears of it only once its tracer has waited
 * for it. Our own child is left to our own wait (Node's child_process reaps it as usual); any
 * other process is waited for as its tracer, which hands it back to its real parent.
 */
function releaseDead(pid: number): void {
  const st = procState(pid);
  if (st === undefined || st.ppid === process.pid) return;
  const f = libcFunction("waitpid", WAITPID);
  const status = Buffer.alloc(4);
  const deadline = Date.now() + 1000;
  for (;;) {
    setErrno(0);
    const r = f(pid, status, WALL | WNOHANG) as number;
    if (r === pid) return;
    if (r === -1 && lastErrno() !== EINTR) return; // ECHILD: not ours to wait for (any more)
    if (Date.now() >= deadline) return;
    sleepMs(1);
  }
}

/** PTRACE_SECCOMP_GET_FILTER for one index (the kernel's numbering): the program, or undefined at ENOENT. */
function getFilter(pid: number, index: number): Insn[] | undefined {
  const what = `ptrace(PTRACE_SECCOMP_GET_FILTER, ${pid}, ${index})`;
  const len = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, BigInt(index), 0n);
  if (len.ret < 0n) {
    if (len.errno === ENOENT) return undefined;
    throw new KernelError(what, len.errno, getFilterHint(pid, len.errno, index));
  }
  const buf = Buffer.alloc(Math.max(8 * Number(len.ret), 8));
  const got = ptrace(PTRACE_SECCOMP_GET_FILTER, pid, BigInt(index), addressOf(buf));
  if (got.ret < 0n) throw new KernelError(what, got.errno, getFilterHint(pid, got.errno, index));
  return decodeProgram(buf.subarray(0, 8 * Math.min(Number(got.ret), Number(len.ret))));
}

function getFilterHint(pid: number, errno: number, index: number): string | undefined {
  switch (errno) {
    case EACCES:
      return "needs CAP_SYS_ADMIN, and the caller must not run under seccomp itself";
    case EINVAL:
      return index === 0
        ? `process ${pid} is in seccomp filter mode, but the kernel will not dump its filters (built without CONFIG_CHECKPOINT_RESTORE?)`
        : undefined;
    case EMEDIUMTYPE:
      return "the filter is not a classic BPF program";
    default:
      return undefined;
  }
}

/** A numeric field of /proc/PID/task/PID/status (the thread `pid`'s own), or undefined when absent or gone. */
function threadStatusNumber(pid: number, field: string): number | undefined {
  try {
    const m = new RegExp(`^${field}:\\s*(\\d+)`, "m").exec(readFileSync(`/proc/${pid}/task/${pid}/status`, "utf8"));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** The Seccomp: field (0 disabled, 1 strict, 2 filter), or undefined. */
function seccompModeOf(pid: number): number | undefined {
  return threadStatusNumber(pid, "Seccomp");
}

/** The Seccomp_filters: field (how many filters the thread has; Linux 5.9 and later), or undefined. */
function seccompFilterCount(pid: number): number | undefined {
  return threadStatusNumber(pid, "Seccomp_filters");
}

/**
 * The classic BPF programs the kernel runs for thread `pid`, index 0 being the most recently
 * installed (the first the kernel runs). [] when the thread has no filter (seccomp disabled, or
 * strict mode). Pauses the target for an instant (see the header). Throws KernelError: EPERM or
 * EACCES (privileges), ESRCH (no such process, or it ended while we looked), ETIMEDOUT (it did
 * not stop in time; it then stays attached, and stops, until this process exits), EINVAL or
 * EMEDIUMTYPE (the kernel cannot dump the filters).
 */
export function seccompFilters(pid: number, opts: SeccompFiltersOptions = {}): Insn[][] {
  if (!Number.isInteger(pid) || pid <= 0) throw new RangeError(`bad pid ${pid}`);
  if (pid === process.pid) throw new RangeError("seccompFilters cannot inspect the calling process itself");
  const timeoutMs = opts.timeoutMs ?? 2000;
  // Bind every libc function before the target stops, so that the stop is not stretched by
  // loading koffi (the first call in a process takes ~15 ms, later ones ~0.1 ms).
  libcFunction("waitid", WAITID);
  libcFunction("waitpid", WAITPID);
  addressOf(Buffer.alloc(8));

  const seize = ptrace(PTRACE_SEIZE, pid, 0n, 0n);
  if (seize.ret < 0n) {
    if (seize.errno === EPERM && dead(procState(pid))) {
      throw new KernelError(`ptrace(PTRACE_SEIZE, ${pid})`, ESRCH, `process ${pid} is exiting`);
    }
    throw new KernelError(`ptrace(PTRACE_SEIZE, ${pid})`, seize.errno,
      seize.errno === EPERM ? "needs CAP_SYS_PTRACE over the target (root), and the target must not be traced already" : undefined);
  }
  let injectSignal = 0;
  let failed = true;
  try {
    const intr = ptrace(PTRACE_INTERRUPT, pid, 0n, 0n);
    if (intr.ret < 0n) throw new KernelError(`ptrace(PTRACE_INTERRUPT, ${pid})`, intr.errno);
    const stop = waitForStop(pid, timeoutMs);
    if (stop.kind === "timeout") {
      throw new KernelError(`waitid(P_PID, ${pid})`, ETIMEDOUT,
        `process ${pid} did not stop within ${timeoutMs} ms (uninterruptible sleep?); it stays attached until this process exits`);
    }
    if (stop.kind === "dead") throw new KernelError(`waitid(P_PID, ${pid})`, ESRCH, `process ${pid} ended while being inspected`);
    injectSignal = stop.injectSignal;
    const programs: Insn[][] = [];
    for (let index = 0; ; index++) {
      let prog: Insn[] | undefined;
      try {
        prog = getFilter(pid, index);
      } catch (e) {
        // No filter at all: the kernel says EINVAL ("not in filter mode") for index 0.
        if (index === 0 && e instanceof KernelError && e.errno === EINVAL && seccompModeOf(pid) !== 2) break;
        throw e;
      }
      if (prog === undefined) break;
      programs.push(prog);
    }
    failed = false;
    // The kernel numbers filters from the oldest: its index 0 is the first installed (whatever
    // ptrace(2) says). Callers get them in the order the kernel runs them: newest first.
    return programs.reverse();
  } finally {
    const det = ptrace(PTRACE_DETACH, pid, 0n, BigInt(injectSignal));
    if (det.ret < 0n) {
      // ESRCH: the target is not in a ptrace stop: dead (hand it back to its parent), or
      // never stopped (timeout: the kernel detaches it when this process exits).
      if (det.errno === ESRCH && dead(procState(pid))) releaseDead(pid);
      // eslint-disable-next-line no-unsafe-finally
      else if (!failed) throw new KernelError(`ptrace(PTRACE_DETACH, ${pid})`, det.errno);
    }
  }
}

// --- Installing a filter into another process ------------------------------------------------
//
// A filter can only be installed by the process it filters. To narrow a running backend from
// outside (set_client_filter), the supervisor makes the backend itself call
// seccomp(SECCOMP_SET_MODE_FILTER): it stops it, writes a sock_fprog below its stack pointer,
// points it at a system call instruction with the arguments in place, single-steps that one
// instruction, and restores every register. The backend runs no code of its own meanwhile; a
// system call it was in is restarted afterwards, as after any ptrace stop. Filters only ever add
// restrictions, so the worst a failure can do is leave the backend as it was.
//
// One code path for x86_64 and aarch64; what differs is in syscall-regs.ts (register offsets,
// the instruction) and in getRegs/setRegs and the in-progress system call below.

const PTRACE_SINGLESTEP = 9;
const PTRACE_GETREGS = 12;
const PTRACE_SETREGS = 13;
const PTRACE_GETREGSET = 0x4204;
const PTRACE_SETREGSET = 0x4205;
const NT_PRSTATUS = 1;
const NT_ARM_SYSTEM_CALL = 0x404;

let registers: SyscallRegisterLayout | undefined;
function layout(): SyscallRegisterLayout {
  return (registers ??= syscallRegisterLayout(hostKernelArch().name));
}

/** PTRACE_GETREGSET/SETREGSET of one regset through an iovec; `buf` is read into or written from. */
function regset(pid: number, request: number, type: number, buf: Buffer): void {
  const iov = Buffer.alloc(16);
  iov.writeBigUInt64LE(addressOf(buf), 0);
  iov.writeBigUInt64LE(BigInt(buf.length), 8);
  const name = request === PTRACE_GETREGSET ? "PTRACE_GETREGSET" : "PTRACE_SETREGSET";
  const r = ptrace(request, pid, BigInt(type), addressOf(iov));
  if (r.ret < 0n) throw new KernelError(`ptrace(${name}, ${pid}, ${type})`, r.errno);
  // The kernel sets iov_len to what it transferred: a short regset is not one we understand.
  if (iov.readBigUInt64LE(8) !== BigInt(buf.length)) throw new KernelError(`ptrace(${name}, ${pid}, ${type})`, EINVAL, `the kernel transferred ${iov.readBigUInt64LE(8)} bytes, not ${buf.length}`);
}

/** The tracee's general registers (x86_64: PTRACE_GETREGS, as before; aarch64 has no PTRACE_GETREGS: NT_PRSTATUS). */
function getRegs(pid: number): Buffer {
  const regs = Buffer.alloc(layout().size);
  if (layout().arch === "aarch64") {
    regset(pid, PTRACE_GETREGSET, NT_PRSTATUS, regs);
    return regs;
  }
  const r = ptrace(PTRACE_GETREGS, pid, 0n, addressOf(regs));
  if (r.ret < 0n) throw new KernelError(`ptrace(PTRACE_GETREGS, ${pid})`, r.errno);
  return regs;
}

function setRegs(pid: number, regs: Buffer): void {
  if (layout().arch === "aarch64") return regset(pid, PTRACE_SETREGSET, NT_PRSTATUS, regs);
  const r = ptrace(PTRACE_SETREGS, pid, 0n, addressOf(regs));
  if (r.ret < 0n) throw new KernelError(`ptrace(PTRACE_SETREGS, ${pid})`, r.errno);
}

/**
 * aarch64: the system call the kernel considers in progress (pt_regs->syscallno, NT_ARM_SYSTEM_CALL;
 * x86_64 keeps it in orig_rax, set by syscallRegisters). The tracee is told it is in none (-1)
 * for the injected call, so that the kernel's restart logic never reads the registers we set (x0
 * is the injected call's first argument, not an interrupted call's -ERESTART* value) as a call to
 * restart, and the number found is put back afterwards. Why that is right, from
 * arch/arm64/kernel/signal.c (do_signal) and ptrace.c (system_call_set): every stop we work in is
 * a ptrace stop inside get_signal() (the PTRACE_INTERRUPT stop, the single step's SIGTRAP) or the
 * exec's pseudo-step (undumpableAtExec). do_signal() has already prepared any restart before
 * get_signal() (pc rewound to the svc, x0 = orig_x0) and then forgotten the call (syscallno = -1),
 * so the registers we save and restore carry the restart and the number read is -1 there; setting
 * -1 makes the injected call behave the same in any other stop. do_signal() skips its own
 * restart handling when the tracer moved pc, which ours always does; so the one thing not carried
 * by the registers is -ERESTART_RESTARTBLOCK's switch to restart_syscall: a nanosleep, poll or
 * futex wait with a timeout, interrupted by the injection, is restarted from its arguments (it
 * waits its full timeout again; never wrong for PostgreSQL's waits, which recheck their
 * condition), as it is under gdb.
 */
function getInProgressNr(pid: number): number | undefined {
  if (layout().arch !== "aarch64") return undefined;
  const nr = Buffer.alloc(4);
  regset(pid, PTRACE_GETREGSET, NT_ARM_SYSTEM_CALL, nr);
  return nr.readInt32LE(0);
}

function setInProgressNr(pid: number, value: number | undefined): void {
  if (value === undefined) return;
  const nr = Buffer.alloc(4);
  nr.writeInt32LE(value, 0);
  regset(pid, PTRACE_SETREGSET, NT_ARM_SYSTEM_CALL, nr);
}

/** What startSyscallIn saved, to be restored by finishSyscallIn. */
interface SavedState {
  regs: Buffer;
  inProgressNr: number | undefined;
  /** Where the system call instruction the step runs is. */
  at: bigint;
  /** The thread's blocked signals, every blockable one blocked for the step. */
  sigmask: Buffer;
}

/** Start and end of the [vdso] mapping in /proc/PID/maps (pid "self" for ours). */
function vdsoRange(pid: number | "self"): { lo: bigint; hi: bigint } | undefined {
  const line = readFileSync(`/proc/${pid}/maps`, "utf8").split("\n").find((l) => l.endsWith("[vdso]"));
  if (!line) return undefined;
  const [lo, hi] = line.split(" ")[0]!.split("-").map((h) => BigInt(`0x${h}`));
  return { lo: lo!, hi: hi! };
}

let vdsoSyscallOffset: bigint | undefined;
/**
 * The address used last. Every child of the postmaster is a fork of it (no exec), so its vDSO is
 * where its siblings' is: the address is checked in the target (two bytes, PTRACE_PEEKTEXT)
 * instead of reading its whole /proc/PID/maps (a backend's is hundreds of lines; this saved about
 * 0.4 ms per injection). The check is only an optimisation of where to look: a page that holds
 * `syscall` there but is not executable makes the single step fault, which fails the injection
 * (the caller then kills the target: fail closed).
 */
let lastSyscallAddress: bigint | undefined;

const PTRACE_PEEKTEXT = 1;

/** True when the stopped tracee has the system call instruction (x86_64 `syscall`, aarch64 `svc #0`) at `addr`. */
function hasSyscallAt(pid: number, addr: bigint): boolean {
  const word = Buffer.alloc(8);
  // The raw system call stores the word at `data` (glibc's wrapper returns it instead).
  const r = ptrace(PTRACE_PEEKTEXT, pid, addr, addressOf(word));
  return r.ret === 0n && isSyscallInstruction(layout(), word);
}

/**
 * The address of a system call instruction (x86_64 `syscall`, 0f 05; aarch64 `svc #0`, at a
 * 4-byte boundary: __kernel_rt_sigreturn has one) in the target's vDSO. The vDSO is one image for
 * every process of the kernel, mapped at a different address in each: the offset is found in our
 * own copy and added to the target's base (from its maps). Nothing of the target's memory is
 * read but that instruction, so only ptrace access is needed (no DAC override on a
 * /proc/PID/mem of another user).
 */
function syscallInstruction(pid: number): bigint {
  if (lastSyscallAddress !== undefined && hasSyscallAt(pid, lastSyscallAddress)) return lastSyscallAddress;
  if (vdsoSyscallOffset === undefined) {
    const own = vdsoRange("self");
    if (!own) throw new KernelError("find a syscall instruction", ESRCH, "this process has no vDSO");
    const mem = openSync("/proc/self/mem", "r");
    try {
      const buf = Buffer.alloc(Number(own.hi - own.lo));
      const n = readSync(mem, buf, 0, buf.length, Number(own.lo));
      const at = findSyscallInstruction(layout(), buf.subarray(0, n)); // the vDSO is page-aligned: offsets keep the alignment
      if (at < 0) throw new KernelError("find a syscall instruction", ESRCH, "no syscall instruction in the vDSO");
      vdsoSyscallOffset = BigInt(at);
    } finally {
      closeSync(mem);
    }
  }
  const target = vdsoRange(pid);
  if (!target) throw new KernelError(`find a syscall instruction in ${pid}`, ESRCH, "the process has no vDSO mapping");
  const at = target.lo + vdsoSyscallOffset;
  // Checked before it is used: a vDSO that differs from ours would have the target execute
  // whatever lies there.
  if (!hasSyscallAt(pid, at)) throw new KernelError(`find a syscall instruction in ${pid}`, ESRCH, `its vDSO has no system call instruction at 0x${at.toString(16)}`);
  lastSyscallAddress = at;
  return lastSyscallAddress;
}

const PTRACE_POKEDATA = 5;

/** Writes `image` at `addr` in the stopped tracee, a word at a time (PTRACE_POKEDATA: ptrace access is enough). */
function pokeImage(pid: number, addr: bigint, image: Buffer): void {
  const padded = Buffer.alloc(Math.ceil(image.length / 8) * 8);
  image.copy(padded);
  for (let off = 0; off < padded.length; off += 8) {
    const r = ptrace(PTRACE_POKEDATA, pid, addr + BigInt(off), padded.readBigUInt64LE(off));
    if (r.ret < 0n) throw new KernelError(`ptrace(PTRACE_POKEDATA, ${pid})`, r.errno);
  }
}

let processVmWritevNr: number | undefined;

/**
 * Writes `image` at `addr` in the stopped tracee with one process_vm_writev(2) (the same ptrace
 * access check as PTRACE_POKEDATA, and no open of /proc/PID/mem), instead of a system call per
 * word: a filter image is a word per instruction, 170 calls for the starter profile's. Falls back
 * to PTRACE_POKEDATA when the kernel refuses it (a container's seccomp profile, ENOSYS) or writes
 * less.
 */
function writeImage(pid: number, addr: bigint, image: Buffer): void {
  processVmWritevNr ??= syscallNumber(hostKernelArch().name, "process_vm_writev")!;
  const iov = Buffer.alloc(32); // struct iovec local, remote
  iov.writeBigUInt64LE(addressOf(image), 0);
  iov.writeBigUInt64LE(BigInt(image.length), 8);
  iov.writeBigUInt64LE(addr, 16);
  iov.writeBigUInt64LE(BigInt(image.length), 24);
  const base = addressOf(iov);
  const r = syscall6(processVmWritevNr, [BigInt(pid), base, 1n, base + 16n, 1n, 0n]);
  if (r.ret === BigInt(image.length)) return;
  pokeImage(pid, addr, image);
}

export interface InjectOptions extends SeccompFiltersOptions {
  /** Called while the target is still stopped, with the outcome, just before it is let go. */
  beforeRelease?: (error: KernelError | undefined) => void;
  /** SECCOMP_FILTER_FLAG_LOG: the kernel logs the filter's non-allow actions (audit, or kmsg without auditd). */
  log?: boolean;
  /**
   * SECCOMP_FILTER_FLAG_TSYNC: every thread of the process gets the filter, or none does (the
   * kernel refuses when a thread's filters have diverged: KernelError EBUSY naming that thread).
   */
  allThreads?: boolean;
  /** Called once the target is stopped, before anything is written: false gives up (ESRCH), e.g. when the pid no longer names the process meant. */
  stillTheOne?: () => boolean;
  /**
   * PendingInjection: called with true just before the target runs the one instruction (its
   * seccomp(2) call, which a supervisor must let through) and with false once it has; a false
   * answer to true means "not now" (the target stays stopped and poll() asks again).
   */
  stepping?: (on: boolean) => boolean | void;
}

const SECCOMP_FILTER_FLAG_TSYNC = 1n;
const SECCOMP_FILTER_FLAG_LOG = 2n;
const EBUSY = 16;

/**
 * Makes the stopped tracee `pid` run one system call: writes `image` (if any, with
 * process_vm_writev) well below its stack pointer (past the red zone, 16-byte aligned; `at(base)` gives the arguments, which may
 * point into it), points it at a `syscall` instruction of its vDSO or libc with the arguments in
 * place, single-steps that one instruction and restores every register. Returns the kernel's
 * result (negative: -errno). The tracee must be in a ptrace stop; it stays in one.
 */
function runSyscallIn(pid: number, nr: number, image: Buffer | undefined, args: (base: bigint) => bigint[], timeoutMs: number): bigint {
  const saved = startSyscallIn(pid, nr, image, args);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const after = waitForStop(pid, Math.max(deadline - Date.now(), 1));
    if (after.kind !== "stopped") throw new KernelError(`waitid(P_PID, ${pid})`, after.kind === "dead" ? ESRCH : ETIMEDOUT);
    if (after.injectSignal === 0 && !stepRan(pid, saved)) {
      stepAgain(pid, saved);
      continue;
    }
    return finishSyscallIn(pid, saved, after.injectSignal);
  }
}

/**
 * In a stop with no signal before the instruction ran: a PTRACE_INTERRUPT still pending (the
 * first stop seen was a signal's, which came first) stops the target as soon as it is resumed.
 * Nothing to deliver: step again.
 */
function stepAgain(pid: number, saved: SavedState): void {
  const step = ptrace(PTRACE_SINGLESTEP, pid, 0n, 0n);
  if (step.ret < 0n) {
    restore(pid, saved);
    throw new KernelError(`ptrace(PTRACE_SINGLESTEP, ${pid})`, step.errno);
  }
}

/**
 * Did the single step run the system call instruction? Every signal that can be blocked is
 * blocked during the step (startSyscallIn), as one that arrived between the step's start and the
 * instruction gave a signal-delivery stop first, the call not run and its registers unchanged:
 * the "result" read then was the call's number (seccomp's, 317 on x86_64, read as TSYNC's thread
 * id; test/inject-signals.test.ts). Only a signal that cannot be blocked stops it so now.
 */
function stepRan(pid: number, saved: SavedState): boolean {
  return programCounter(layout(), getRegs(pid)) !== saved.at;
}

const PTRACE_GETSIGMASK = 0x420a;
const PTRACE_SETSIGMASK = 0x420b;
/** The kernel's sigset_t: 64 signals. */
const SIGSET_BYTES = 8n;

function getSigmask(pid: number): Buffer {
  const mask = Buffer.alloc(Number(SIGSET_BYTES));
  const r = ptrace(PTRACE_GETSIGMASK, pid, SIGSET_BYTES, addressOf(mask));
  if (r.ret < 0n) throw new KernelError(`ptrace(PTRACE_GETSIGMASK, ${pid})`, r.errno);
  return mask;
}

function setSigmask(pid: number, mask: Buffer): void {
  const r = ptrace(PTRACE_SETSIGMASK, pid, SIGSET_BYTES, addressOf(mask));
  if (r.ret < 0n) throw new KernelError(`ptrace(PTRACE_SETSIGMASK, ${pid})`, r.errno);
}

/** runSyscallIn's first half: everything up to the single step. Returns what to restore. */
function startSyscallIn(pid: number, nr: number, image: Buffer | undefined, args: (base: bigint) => bigint[]): SavedState {
  const regs = getRegs(pid);
  const inProgressNr = getInProgressNr(pid);
  const at = syscallInstruction(pid);
  const saved: SavedState = { regs, inProgressNr, at, sigmask: getSigmask(pid) };
  const base = imageBase(stackPointer(layout(), regs), image?.length ?? 0);
  const a = args(base); // may fill in pointers into the image
  if (image) writeImage(pid, base, image);
  setRegs(pid, syscallRegisters(layout(), regs, nr, a, at)); // x86_64: orig_rax -1, not in a syscall
  try {
    setInProgressNr(pid, inProgressNr === undefined ? undefined : -1);
    // Pending signals wait for the step (the kernel keeps SIGKILL and SIGSTOP unblockable):
    // they are delivered once the mask is back and the target runs on (stepRan).
    setSigmask(pid, Buffer.alloc(Number(SIGSET_BYTES), 0xff));
    const step = ptrace(PTRACE_SINGLESTEP, pid, 0n, 0n);
    if (step.ret < 0n) throw new KernelError(`ptrace(PTRACE_SINGLESTEP, ${pid})`, step.errno);
  } catch (e) {
    restore(pid, saved);
    throw e;
  }
  return saved;
}

function restore(pid: number, saved: SavedState): void {
  setRegs(pid, saved.regs);
  setInProgressNr(pid, saved.inProgressNr);
  setSigmask(pid, saved.sigmask);
}

/** runSyscallIn's second half, in the stop after the step (whose signal is `signal`): the result, and every register restored. */
function finishSyscallIn(pid: number, saved: SavedState, signal: number): bigint {
  const ran = stepRan(pid, saved);
  const result = syscallResult(layout(), getRegs(pid));
  restore(pid, saved);
  if (!ran) throw new KernelError(`seccomp(2) in ${pid}`, EINTR, `a signal (${signal}) stopped it before the call ran`);
  return result;
}

/** The architectures whose registers syscall-regs.ts knows. */
function requireInjectable(what: string): void {
  const arch = hostKernelArch().name;
  if (arch !== "x86_64" && arch !== "aarch64") {
    throw new KernelError(what, EINVAL, `running a system call in another process is implemented for x86_64 and aarch64, not ${arch}`);
  }
}

/** A program's sock_fprog header (its pointer left 0) and code, encoded once per program (the supervisor injects one per context). */
const images = new WeakMap<readonly Insn[], Buffer>();
function imageOf(prog: readonly Insn[]): Buffer {
  let image = images.get(prog);
  if (!image) {
    const fprog = Buffer.alloc(16);
    fprog.writeUInt16LE(prog.length, 0);
    image = Buffer.concat([fprog, encodeProgram(prog)]);
    images.set(prog, image);
  }
  return image;
}

/** seccomp(SECCOMP_SET_MODE_FILTER) in the stopped tracee `pid`; throws KernelError when the kernel refuses. */
function installIn(pid: number, prog: readonly Insn[], opts: InjectOptions): void {
  const call = installCall(pid, prog, opts);
  installResult(pid, runSyscallIn(pid, call.nr, call.image, call.args, opts.timeoutMs ?? 5000), call.before);
}

/** The seccomp(2) call that installs `prog`, for runSyscallIn or startSyscallIn. */
function installCall(pid: number, prog: readonly Insn[], opts: InjectOptions): { nr: number; image: Buffer; before: number; args: (base: bigint) => bigint[] } {
  const image = Buffer.from(imageOf(prog)); // a copy: its pointer field is set per target
  const flags = (opts.log ? SECCOMP_FILTER_FLAG_LOG : 0n) | (opts.allThreads ? SECCOMP_FILTER_FLAG_TSYNC : 0n);
  // A return of 0 is not proof: a filter the process installed itself (prctl(PR_SET_SECCOMP)
  // needs no seccomp() call) can answer seccomp() with SECCOMP_RET_ERRNO and errno 0, which
  // ranks above our listener and installs nothing. The kernel's own count of the thread's
  // filters, read now (the target is stopped), must go up by one (installResult).
  const before = seccompFilterCount(pid);
  if (before === undefined) throw new KernelError(`seccomp(SECCOMP_SET_MODE_FILTER) in ${pid}`, EINVAL, "the kernel does not count a thread's filters (/proc/PID/status has no Seccomp_filters: Linux 5.9 or later is needed)");
  return {
    nr: syscallNumber(hostKernelArch().name, "seccomp")!,
    image,
    before,
    args: (base) => {
      image.writeBigUInt64LE(base + 16n, 8); // sock_fprog.filter: the code right after it
      return [1n /* SECCOMP_SET_MODE_FILTER */, flags, base];
    },
  };
}

function installResult(pid: number, result: bigint, before: number): void {
  // With TSYNC a positive result is the thread whose filters diverged: nothing was installed.
  if (result > 0n) throw new KernelError(`seccomp(SECCOMP_SET_MODE_FILTER, TSYNC) in ${pid}`, EBUSY, `thread ${result} has filters of its own`);
  if (result !== 0n) throw new KernelError(`seccomp(SECCOMP_SET_MODE_FILTER) in ${pid}`, Number(-result));
  const after = seccompFilterCount(pid);
  if (after !== before + 1) throw new KernelError(`seccomp(SECCOMP_SET_MODE_FILTER) in ${pid}`, EPERM, `it returned 0 but the thread has ${after ?? "?"} filters, not ${before + 1} (a filter of the process's own answered the call)`);
}

export function injectSeccompFilter(pid: number, prog: readonly Insn[], opts: InjectOptions = {}): void {
  requireInjectable("injectSeccompFilter");
  libcFunction("waitid", WAITID);
  const seize = ptrace(PTRACE_SEIZE, pid, 0n, 0n);
  if (seize.ret < 0n) throw new KernelError(`ptrace(PTRACE_SEIZE, ${pid})`, seize.errno);
  let injectSignal = 0;
  let outcome: KernelError | undefined;
  try {
    const intr = ptrace(PTRACE_INTERRUPT, pid, 0n, 0n);
    if (intr.ret < 0n) throw new KernelError(`ptrace(PTRACE_INTERRUPT, ${pid})`, intr.errno);
    const stop = waitForStop(pid, opts.timeoutMs ?? 2000);
    if (stop.kind !== "stopped") throw new KernelError(`waitid(P_PID, ${pid})`, stop.kind === "dead" ? ESRCH : ETIMEDOUT);
    injectSignal = stop.injectSignal;
    if (opts.stillTheOne && !opts.stillTheOne()) throw new KernelError(`inject into ${pid}`, ESRCH, "the pid names another process now");
    installIn(pid, prog, opts);
  } catch (e) {
    outcome = e instanceof KernelError ? e : new KernelError(`inject into ${pid}`, EINVAL, (e as Error).message);
    throw outcome;
  } finally {
    opts.beforeRelease?.(outcome);
    ptrace(PTRACE_DETACH, pid, 0n, BigInt(injectSignal));
  }
}

/**
 * A filter injection that never blocks the caller: the target is seized and asked to stop at
 * once, and poll() installs the filter as soon as it is stopped. A target may take a while to
 * stop: a parent waiting for its vfork child (posix_spawn, popen) stops only once the child has
 * exec'd or exited, and that exec may be a call the supervisor holds until this very
 * classification is answered; waiting synchronously would deadlock. The single step that runs
 * seccomp(2) in the target is not waited for either: on a busy machine the target may wait for a
 * CPU for milliseconds, and the caller's thread (the launcher's main thread, which classifies
 * every other process) must not wait with it.
 */
export class PendingInjection {
  private phase: "stopping" | "stopped" | "stepping" | "settled" = "stopping";
  private injectSignal = 0;
  private saved: SavedState | undefined;
  /** The thread's filter count before the step (installCall), which the result must raise by one. */
  private filtersBefore = 0;
  private stepDeadline = 0;

  constructor(readonly pid: number, private readonly prog: readonly Insn[], private readonly opts: InjectOptions = {}) {
    requireInjectable("PendingInjection");
    libcFunction("waitid", WAITID);
    const seize = ptrace(PTRACE_SEIZE, pid, 0n, 0n);
    if (seize.ret < 0n) throw new KernelError(`ptrace(PTRACE_SEIZE, ${pid})`, seize.errno);
    const intr = ptrace(PTRACE_INTERRUPT, pid, 0n, 0n);
    if (intr.ret < 0n) {
      ptrace(PTRACE_DETACH, pid, 0n, 0n);
      throw new KernelError(`ptrace(PTRACE_INTERRUPT, ${pid})`, intr.errno);
    }
  }

  /**
   * After giving up (the caller kills the target): a tracee that dies is reaped only by its
   * tracer, and until then its real parent (the postmaster) cannot reap it. True once it is
   * gone and handed back; call again until it is.
   */
  releaseIfDead(): boolean {
    const st = procState(this.pid);
    if (st === undefined) return true;
    if (!dead(st)) {
      ptrace(PTRACE_DETACH, this.pid, 0n, 0n); // works only in a stop; harmless otherwise
      return false;
    }
    releaseDead(this.pid);
    return procState(this.pid) === undefined || procState(this.pid)?.ppid !== process.pid;
  }

  /** Stopped, and running the one instruction: poll again soon (it needs only a CPU). */
  get stepping(): boolean {
    return this.phase === "stepping";
  }

  /** The target's ptrace stop, if it is in one now; throws (settled) when it is gone. */
  private stop(): { signal: number; event: number } | undefined {
    const info = Buffer.alloc(128);
    const r = waitid(this.pid, info, WSTOPPED | WALL | WNOHANG);
    if (r.ret === -1) {
      if (r.errno === EINTR) return undefined;
      this.phase = "settled";
      throw new KernelError(`waitid(P_PID, ${this.pid})`, r.errno === ECHILD ? ESRCH : r.errno);
    }
    const s = decodeStopInfo(info);
    if (s.pid === this.pid && (s.code === CLD_TRAPPED || s.code === CLD_STOPPED)) return s;
    if (dead(procState(this.pid))) {
      this.phase = "settled";
      releaseDead(this.pid);
      throw new KernelError(`inject into ${this.pid}`, ESRCH, "the process ended");
    }
    return undefined;
  }

  /** "waiting" while the target has not stopped yet, or not finished the step; "done" once the filter is in. Throws KernelError (the target is then let go, or gone). */
  poll(): "waiting" | "done" {
    if (this.phase === "settled") return "done";
    if (this.phase === "stepping") return this.stepped();
    if (this.phase === "stopping") {
      const s = this.stop();
      if (!s) return "waiting";
      this.injectSignal = s.event === PTRACE_EVENT_STOP ? 0 : s.event === 0 ? s.signal : s.signal === SIGTRAP ? 0 : s.signal;
      this.phase = "stopped";
      if (this.opts.stillTheOne && !this.opts.stillTheOne()) this.giveUp(new KernelError(`inject into ${this.pid}`, ESRCH, "the pid names another process now"));
    }
    if (this.opts.stepping?.(true) === false) return "waiting";
    try {
      const call = installCall(this.pid, this.prog, this.opts);
      this.filtersBefore = call.before;
      this.saved = startSyscallIn(this.pid, call.nr, call.image, call.args);
    } catch (e) {
      this.opts.stepping?.(false);
      this.giveUp(e);
    }
    this.phase = "stepping";
    this.stepDeadline = Date.now() + (this.opts.timeoutMs ?? 5000);
    // Not waited for, not even briefly: on a busy machine any sleep of this thread lasts until it
    // is scheduled again (milliseconds), and it classifies every other process meanwhile.
    return this.stepped();
  }

  /** In a stop: lets the target go as it was and throws `e`. */
  private giveUp(e: unknown): never {
    this.phase = "settled";
    ptrace(PTRACE_DETACH, this.pid, 0n, BigInt(this.injectSignal));
    throw e;
  }

  /** In the stepping phase: "done" once the step's stop came and the filter is in. */
  private stepped(): "waiting" | "done" {
    let stop;
    try {
      stop = this.stop();
    } catch (e) {
      this.opts.stepping?.(false);
      throw e;
    }
    if (!stop) {
      if (Date.now() < this.stepDeadline) return "waiting";
      // Still running (or stuck) at the syscall instruction: it cannot be let go with its
      // registers changed; the caller kills it (fail closed). Its seccomp call is not let
      // through any more.
      this.phase = "settled";
      this.opts.stepping?.(false);
      throw new KernelError(`waitid(P_PID, ${this.pid})`, ETIMEDOUT);
    }
    if ((stop.event !== 0 || stop.signal === SIGTRAP) && !stepRan(this.pid, this.saved!)) {
      try {
        stepAgain(this.pid, this.saved!);
      } catch (e) {
        this.opts.stepping?.(false);
        this.giveUp(e);
      }
      return "waiting";
    }
    this.opts.stepping?.(false);
    this.phase = "settled";
    try {
      installResult(this.pid, finishSyscallIn(this.pid, this.saved!, stop.event === 0 ? stop.signal : 0), this.filtersBefore);
      return "done";
    } finally {
      ptrace(PTRACE_DETACH, this.pid, 0n, BigInt(this.injectSignal));
    }
  }
}

/**
 * prctl(PR_SET_DUMPABLE, 0) in the tracee `pid`, which must be in a ptrace stop (an exec stop:
 * after execve reset dumpability and before the new program's first instruction).
 */
export function makeUndumpableIn(pid: number, timeoutMs = 5000): void {
  requireInjectable("makeUndumpableIn");
  const result = runSyscallIn(pid, syscallNumber(hostKernelArch().name, "prctl")!, undefined, () => [4n /* PR_SET_DUMPABLE */, 0n], timeoutMs);
  if (result !== 0n) throw new KernelError(`prctl(PR_SET_DUMPABLE, 0) in ${pid}`, Number(-result));
}

// --- Non-dumpable from the first instruction ---------------------------------------------------
//
// execve makes a process dumpable again (for the same user), so a server made non-dumpable
// before its exec would not stay so, and PostgreSQL never asks for it itself. The tracer seizes
// the stage before it execs, with PTRACE_O_TRACEEXEC: the kernel stops it after the new image is
// in place and before its first instruction, and the tracer runs prctl(PR_SET_DUMPABLE, 0) in it
// (makeUndumpableIn) and lets go. Every process the postmaster forks inherits the flag.

const PTRACE_O_TRACEEXEC = 0x10n;
const PTRACE_EVENT_EXEC = 4;
const PTRACE_CONT = 7;
const PTRACE_SYSCALL = 24;

/** PTRACE_SEIZE with PTRACE_O_TRACEEXEC: `pid` stops at its next successful execve. */
export function seizeUntilExec(pid: number): void {
  requireInjectable("seizeUntilExec");
  libcFunction("waitid", WAITID);
  const seize = ptrace(PTRACE_SEIZE, pid, 0n, PTRACE_O_TRACEEXEC);
  if (seize.ret < 0n) throw new KernelError(`ptrace(PTRACE_SEIZE, ${pid}, PTRACE_O_TRACEEXEC)`, seize.errno);
}

/**
 * Waits (blocking, polled) for the exec stop of a process seizeUntilExec() seized, makes it
 * non-dumpable there, and detaches. Signals it gets meanwhile are passed on. Throws KernelError
 * (ESRCH: it ended first; ETIMEDOUT: no exec in time, it is then left traced until we exit).
 */
export function undumpableAtExec(pid: number, timeoutMs: number, stepTimeoutMs = 5000): void {
  const deadline = Date.now() + timeoutMs;
  const info = Buffer.alloc(128);
  for (;;) {
    const r = waitid(pid, info, WSTOPPED | WALL | WNOHANG);
    if (r.ret === -1) {
      if (r.errno === EINTR) continue;
      throw new KernelError(`waitid(P_PID, ${pid})`, r.errno === ECHILD ? ESRCH : r.errno);
    }
    const s = decodeStopInfo(info);
    if (s.pid === pid && (s.code === CLD_TRAPPED || s.code === CLD_STOPPED)) {
      if (s.event === PTRACE_EVENT_EXEC) {
        let failure: unknown;
        try {
          // The exec stop is inside execve: registers set now would be overwritten by its return
          // value. A stop after that, still before the first instruction: on x86_64 its
          // syscall-exit-stop. On aarch64 a syscall-exit-stop shows x7 as 1 (the stop's
          // direction) and discards what the tracer writes there (report_syscall_exit in
          // arch/arm64/kernel/ptrace.c), so restoring the saved registers would leave x7 = 1 in
          // the new program; a single step from the exec stop ends in the kernel's pseudo-step
          // trap at the same place (the syscall exit with TIF_SINGLESTEP: x7 restored first, no
          // register nobbled), a SIGTRAP that the detach below discards.
          const aarch64 = layout().arch === "aarch64";
          const request = aarch64 ? PTRACE_SINGLESTEP : PTRACE_SYSCALL;
          const sys = ptrace(request, pid, 0n, 0n);
          if (sys.ret < 0n) throw new KernelError(`ptrace(${aarch64 ? "PTRACE_SINGLESTEP" : "PTRACE_SYSCALL"}, ${pid})`, sys.errno);
          const exitStop = waitForStop(pid, stepTimeoutMs);
          if (exitStop.kind !== "stopped") throw new KernelError(`waitid(P_PID, ${pid})`, exitStop.kind === "dead" ? ESRCH : ETIMEDOUT);
          makeUndumpableIn(pid, stepTimeoutMs);
        } catch (e) {
          failure = e;
        }
        const detached = ptrace(PTRACE_DETACH, pid, 0n, 0n);
        // Not in a stop (a step that did not end in time): it may be running with the injected
        // registers, and a tracer that exits without PTRACE_DETACH leaves it single-stepping
        // (aarch64: the next instruction traps, SIGTRAP). It must not run on: fail closed here,
        // not when the launcher reads our error.
        if (failure && detached.ret < 0n) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // gone already
          }
        }
        if (failure) throw failure;
        return;
      }
      // A signal (or a group-stop) before the exec: pass it on and keep waiting.
      const sig = s.event === 0 ? s.signal : 0;
      ptrace(PTRACE_CONT, pid, 0n, BigInt(sig));
      continue;
    }
    if (dead(procState(pid))) throw new KernelError(`waitid(P_PID, ${pid})`, ESRCH, `process ${pid} ended before its exec`);
    if (Date.now() >= deadline) throw new KernelError(`waitid(P_PID, ${pid})`, ETIMEDOUT, `process ${pid} did not exec within ${timeoutMs} ms`);
    sleepMs(2);
  }
}
