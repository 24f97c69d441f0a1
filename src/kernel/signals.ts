// A SIGSYS recorder: lets a process survive SECCOMP_RET_TRAP and see that it happened.
//
// SECCOMP_RET_TRAP sends a synchronous SIGSYS to the thread that made the syscall; with the
// default disposition that kills the process exactly like SECCOMP_RET_KILL_PROCESS (and a blocked
// or ignored SIGSYS is forced back to default). Installing a handler keeps the process alive: the
// syscall is not executed and, once the handler returns, it "returns" whatever the saved return
// register holds, which the kernel rolled back to the syscall number (x86_64: rax = orig_rax).
//
// The handler here is a koffi callback, i.e. JavaScript. That is only sound because a seccomp
// SIGSYS is synchronous: it is delivered on the thread that made the filtered syscall, at the
// point where that thread is inside a synchronous koffi call, so V8 is in the same state as for
// any native-to-JS callback. The handler only stores into a preallocated Int32Array. Returning
// from it needs rt_sigreturn(2), so a filter that traps must allow rt_sigreturn.

import { KernelError } from "./errors.js";
import { ffi, lastErrno, libcFunction } from "./libc.js";

const SIGSYS = 31; // x86_64 and aarch64
const SA_SIGINFO = 4;
const SIGACTION_SIZE = 152; // glibc struct sigaction on 64-bit Linux
const SA_FLAGS_OFFSET = 136;

// siginfo_t offsets for SIGSYS (si_signo, si_errno, si_code, then _sigsys at 16).
const SI_ERRNO = 4;
const SI_CODE = 8;
const SI_SYSCALL = 24;
const SI_ARCH = 28;

/** Slots of SigsysRecorder.state. */
export const SIGSYS_COUNT = 0;
export const SIGSYS_DATA = 1;
export const SIGSYS_SYSCALL = 2;
export const SIGSYS_ARCH = 3;
export const SIGSYS_CODE = 4;

export interface SigsysRecorder {
  /**
   * [count, data, syscall, arch, si_code] of the last SIGSYS: `data` is SECCOMP_RET_DATA of the
   * TRAP action (delivered as si_errno), `syscall` the trapped syscall number, `arch` its
   * AUDIT_ARCH_* value (as int32), si_code 1 (SYS_SECCOMP) for seccomp traps. Reading it
   * allocates nothing.
   */
  readonly state: Int32Array;
  /** Zero the state. */
  reset(): void;
  /** Put back the previous SIGSYS disposition and release the callback. */
  uninstall(): void;
}

let protoType: ReturnType<ReturnType<typeof ffi>["proto"]> | undefined;
let current: SigsysRecorder | undefined;

/** Install (once per process) a SIGSYS handler that records traps instead of dying. */
export function installSigsysRecorder(): SigsysRecorder {
  if (current) return current;
  const k = ffi();
  const sigaction = libcFunction("sigaction", "int sigaction(int sig, const void *act, void *oldact)");
  protoType ??= k.proto("void pg_seccomp_sigsys_handler(int sig, void *info, void *ucontext)");
  const state = new Int32Array(5);
  const decode = k.decode;
  const handler = (_sig: number, info: bigint, _uc: bigint): void => {
    try {
      state[SIGSYS_COUNT] = (state[SIGSYS_COUNT] ?? 0) + 1;
      state[SIGSYS_DATA] = decode(info, SI_ERRNO, "int32_t") as number;
      state[SIGSYS_CODE] = decode(info, SI_CODE, "int32_t") as number;
      state[SIGSYS_SYSCALL] = decode(info, SI_SYSCALL, "int32_t") as number;
      state[SIGSYS_ARCH] = decode(info, SI_ARCH, "int32_t") as number;
    } catch {
      // Never throw out of a signal handler.
    }
  };
  const cb = k.register(handler, k.pointer(protoType));
  const act = Buffer.alloc(SIGACTION_SIZE);
  act.writeBigUInt64LE(cb, 0);
  act.writeInt32LE(SA_SIGINFO, SA_FLAGS_OFFSET);
  const old = Buffer.alloc(SIGACTION_SIZE);
  if ((sigaction(SIGSYS, act, old) as number) === -1) {
    const e = lastErrno();
    k.unregister(cb);
    throw new KernelError("sigaction(SIGSYS)", e);
  }
  // Keep the callback and the action alive for as long as the handler is installed.
  const keep = { act, cb };
  current = {
    state,
    reset() {
      state.fill(0);
    },
    uninstall() {
      if ((sigaction(SIGSYS, old, null) as number) === -1) throw new KernelError("sigaction(SIGSYS)", lastErrno());
      k.unregister(keep.cb);
      current = undefined;
    },
  };
  return current;
}
