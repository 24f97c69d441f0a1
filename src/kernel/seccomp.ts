// seccomp(2) and the prctl bits around it.
//
// installFilter() acts on the calling thread only unless `tsync` is given. In Node that is the
// JS thread that makes the call; Node's helper threads (libuv pool, V8 platform workers,
// inspector) are left unfiltered, and children created after the call inherit the filter.

import {
  BPF_ABS,
  BPF_ALU,
  BPF_DIV,
  BPF_IMM,
  BPF_JA,
  BPF_JMP,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_MAXINSNS,
  BPF_MEM,
  BPF_MEMWORDS,
  BPF_MOD,
  BPF_RET,
  BPF_ST,
  BPF_STX,
  BPF_W,
  encodeProgram,
  type Insn,
} from "../bpf/insn.js";
import { SECCOMP_DATA_SIZE, SECCOMP_RET_ACTIONS, seccompRet } from "../seccomp/index.js";
import { hostKernelArch } from "./arch.js";
import { KernelError } from "./errors.js";
import { addressOf, libcAvailable, prctl, syscall6 } from "./libc.js";

// seccomp(2) operations (linux/seccomp.h).
export const SECCOMP_SET_MODE_STRICT = 0;
export const SECCOMP_SET_MODE_FILTER = 1;
export const SECCOMP_GET_ACTION_AVAIL = 2;
export const SECCOMP_GET_NOTIF_SIZES = 3;

// SECCOMP_SET_MODE_FILTER flags.
export const SECCOMP_FILTER_FLAG_TSYNC = 1 << 0;
export const SECCOMP_FILTER_FLAG_LOG = 1 << 1;
export const SECCOMP_FILTER_FLAG_SPEC_ALLOW = 1 << 2;
export const SECCOMP_FILTER_FLAG_NEW_LISTENER = 1 << 3;
export const SECCOMP_FILTER_FLAG_TSYNC_ESRCH = 1 << 4;
export const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV = 1 << 5;

// prctl(2) options.
export const PR_GET_DUMPABLE = 3;
export const PR_SET_DUMPABLE = 4;
export const PR_GET_SECCOMP = 21;
export const PR_SET_SECCOMP = 22;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;

// ---------------------------------------------------------------------------------------------
// prctl

/** prctl(PR_SET_NO_NEW_PRIVS, 1): required before installFilter() without CAP_SYS_ADMIN. Irreversible. */
export function setNoNewPrivs(): void {
  prctl(PR_SET_NO_NEW_PRIVS, 1);
}

/** prctl(PR_GET_NO_NEW_PRIVS) for the calling thread. */
export function getNoNewPrivs(): boolean {
  return prctl(PR_GET_NO_NEW_PRIVS) === 1;
}

/** prctl(PR_SET_DUMPABLE): a non-dumpable process writes no core file (e.g. on a seccomp kill). */
export function setDumpable(on: boolean): void {
  prctl(PR_SET_DUMPABLE, on ? 1 : 0);
}

/** prctl(PR_GET_SECCOMP): 0 (no seccomp) or 2 (filter mode) for the calling thread. */
export function seccompMode(): number {
  return prctl(PR_GET_SECCOMP);
}

// ---------------------------------------------------------------------------------------------
// seccomp(2)

export interface InstallFilterOptions {
  /** SECCOMP_FILTER_FLAG_TSYNC: install on every thread of the process, or fail. */
  tsync?: boolean;
  /** SECCOMP_FILTER_FLAG_SPEC_ALLOW: do not force speculative-store-bypass mitigation. */
  specAllow?: boolean;
  /** SECCOMP_FILTER_FLAG_NEW_LISTENER: return a user-notification listener fd. */
  newListener?: boolean;
  /** SECCOMP_FILTER_FLAG_LOG: log every action except ALLOW. */
  log?: boolean;
  /** SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (5.19+): a notified task waits killably once received. */
  waitKillableRecv?: boolean;
}

/** The SECCOMP_FILTER_FLAG_* bits for `opts` (TSYNC with NEW_LISTENER adds TSYNC_ESRCH, which the kernel requires). */
export function filterFlags(opts: InstallFilterOptions = {}): number {
  let f = 0;
  if (opts.tsync) f |= SECCOMP_FILTER_FLAG_TSYNC;
  if (opts.log) f |= SECCOMP_FILTER_FLAG_LOG;
  if (opts.specAllow) f |= SECCOMP_FILTER_FLAG_SPEC_ALLOW;
  if (opts.newListener) f |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
  if (opts.tsync && opts.newListener) f |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
  if (opts.waitKillableRecv) f |= SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
  return f;
}

/**
 * A likely reason the kernel's checker (sk_chk_filter + seccomp_check_filter) would reject
 * `prog`, or undefined if none of the usual suspects apply. Used to make EINVAL readable.
 */
export function diagnoseProgram(prog: readonly Insn[]): string | undefined {
  if (prog.length === 0) return "the program is empty";
  if (prog.length > BPF_MAXINSNS) return `the program has ${prog.length} instructions; the limit is ${BPF_MAXINSNS}`;
  for (let pc = 0; pc < prog.length; pc++) {
    const ins = prog[pc]!;
    const cls = ins.code & 0x07;
    const at = `instruction ${pc} (code 0x${ins.code.toString(16)})`;
    switch (cls) {
      case BPF_LD:
      case BPF_LDX: {
        const mode = ins.code & 0xe0;
        const size = ins.code & 0x18;
        if (mode === BPF_ABS) {
          if (cls === BPF_LDX) return `${at}: BPF_LDX|BPF_ABS is not allowed in seccomp filters (use BPF_LD)`;
          if (size !== BPF_W) return `${at}: seccomp only allows 32-bit loads from seccomp_data`;
          if (ins.k % 4 !== 0 || ins.k >= SECCOMP_DATA_SIZE) {
            return `${at}: load offset ${ins.k} is not an aligned offset inside seccomp_data (0..60, multiple of 4)`;
          }
        } else if (mode === BPF_MEM) {
          if (ins.k >= BPF_MEMWORDS) return `${at}: scratch slot ${ins.k} is out of range (0..15)`;
        } else if (mode !== BPF_IMM && mode !== BPF_LEN) {
          return `${at}: addressing mode 0x${mode.toString(16)} is not allowed in seccomp filters`;
        }
        break;
      }
      case BPF_ST:
      case BPF_STX:
        if (ins.k >= BPF_MEMWORDS) return `${at}: scratch slot ${ins.k} is out of range (0..15)`;
        break;
      case BPF_ALU: {
        const op = ins.code & 0xf0;
        if ((op === BPF_DIV || op === BPF_MOD) && (ins.code & 0x08) === BPF_K && ins.k === 0) {
          return `${at}: division by constant zero`;
        }
        break;
      }
      case BPF_JMP: {
        const op = ins.code & 0xf0;
        if (op === BPF_JA) {
          if (pc + 1 + ins.k >= prog.length) return `${at}: jump offset ${ins.k} leaves the program`;
        } else if (pc + 1 + ins.jt >= prog.length || pc + 1 + ins.jf >= prog.length) {
          return `${at}: conditional jump (jt ${ins.jt}, jf ${ins.jf}) leaves the program`;
        }
        break;
      }
      default:
        break;
    }
  }
  const last = prog[prog.length - 1]!;
  if ((last.code & 0x07) !== BPF_RET) return `the last instruction (${prog.length - 1}) is not a BPF_RET`;
  return undefined;
}

function checkFields(prog: readonly Insn[]): void {
  prog.forEach((ins, i) => {
    const ok =
      Number.isInteger(ins.code) && ins.code >= 0 && ins.code <= 0xffff &&
      Number.isInteger(ins.jt) && ins.jt >= 0 && ins.jt <= 0xff &&
      Number.isInteger(ins.jf) && ins.jf >= 0 && ins.jf <= 0xff &&
      Number.isInteger(ins.k) && ins.k >= -0x80000000 && ins.k <= 0xffffffff;
    if (!ok) throw new RangeError(`instruction ${i} has a field out of range: ${JSON.stringify(ins)}`);
  });
}

function installHint(errno: number, flags: number, prog: readonly Insn[]): string {
  switch (errno) {
    case 22: {
      const why = diagnoseProgram(prog);
      return `the kernel rejected the filter (${prog.length} instructions, flags 0x${flags.toString(16)})` +
        (why ? `: ${why}` : ": invalid program or a flag this kernel does not support");
    }
    case 13:
      return "no_new_privs is not set and the caller lacks CAP_SYS_ADMIN (call setNoNewPrivs() first)";
    case 12:
      return "out of memory, or the filters attached to this thread exceed 32768 instructions in total";
    case 14:
      return "the kernel could not read the program";
    case 16:
      return "another filter in this thread's chain already has a user-notification listener";
    case 3:
      return "another thread could not be synchronized (TSYNC)";
    case 38:
      return "this kernel has no seccomp(2) system call";
    default:
      return "could not install the filter";
  }
}

/**
 * seccomp(SECCOMP_SET_MODE_FILTER, flags, &prog) on the calling thread (every thread with
 * `tsync`). Returns the user-notification listener fd when `newListener` is set, else 0.
 * Throws a KernelError such as "seccomp(SECCOMP_SET_MODE_FILTER) failed: EINVAL (Invalid
 * argument): the kernel rejected the filter ...".
 */
export function installFilter(prog: readonly Insn[], opts: InstallFilterOptions = {}): number {
  checkFields(prog);
  const flags = filterFlags(opts);
  const code = encodeProgram(prog);
  // struct sock_fprog { unsigned short len; struct sock_filter *filter; } (16 bytes on 64-bit)
  const fprog = Buffer.alloc(16);
  fprog.writeUInt16LE(prog.length & 0xffff, 0);
  fprog.writeBigUInt64LE(prog.length ? addressOf(code) : 0n, 8);
  const name = "seccomp(SECCOMP_SET_MODE_FILTER)";
  const r = syscall6(hostKernelArch().nr.seccomp, [BigInt(SECCOMP_SET_MODE_FILTER), BigInt(flags), addressOf(fprog)]);
  // Keep the program alive across the call (the kernel copies it).
  void code.length;
  if (r.ret === -1n) throw new KernelError(name, r.errno, installHint(r.errno, flags, prog));
  if ((flags & SECCOMP_FILTER_FLAG_TSYNC) && !(flags & SECCOMP_FILTER_FLAG_TSYNC_ESRCH) && r.ret > 0n) {
    // With TSYNC alone, failure is reported as the id of the thread that could not be synchronized.
    throw new KernelError(name, 3 /* ESRCH */, `thread ${r.ret} could not be synchronized (TSYNC)`);
  }
  return opts.newListener ? Number(r.ret) : 0;
}

/** seccomp(SECCOMP_GET_ACTION_AVAIL) for one SECCOMP_RET_* action (data bits are ignored). */
export function actionAvailable(action: number): boolean {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE((action & 0xffff0000) >>> 0, 0);
  const r = syscall6(hostKernelArch().nr.seccomp, [BigInt(SECCOMP_GET_ACTION_AVAIL), 0n, addressOf(buf)]);
  if (r.ret === 0n) return true;
  if (r.errno === 95 /* EOPNOTSUPP */) return false;
  throw new KernelError("seccomp(SECCOMP_GET_ACTION_AVAIL)", r.errno,
    r.errno === 22 ? "this kernel predates SECCOMP_GET_ACTION_AVAIL (4.14)" : undefined);
}

/** Names of the actions this kernel supports, most restrictive first, as actions_avail spells them ("kill_process", ..., "allow"). */
export function availableActions(): string[] {
  return SECCOMP_RET_ACTIONS.filter((a) => actionAvailable(a.value)).map((a) => a.availName);
}

/** Sizes of the user-notification structs as this kernel sees them (SECCOMP_GET_NOTIF_SIZES). */
export function notifSizes(): { notif: number; resp: number; data: number } {
  const buf = Buffer.alloc(6);
  const r = syscall6(hostKernelArch().nr.seccomp, [BigInt(SECCOMP_GET_NOTIF_SIZES), 0n, addressOf(buf)]);
  if (r.ret === -1n) throw new KernelError("seccomp(SECCOMP_GET_NOTIF_SIZES)", r.errno);
  return { notif: buf.readUInt16LE(0), resp: buf.readUInt16LE(2), data: buf.readUInt16LE(4) };
}

/**
 * Whether this machine can install seccomp filters from Node: Linux, a supported architecture,
 * koffi and libc loadable, CONFIG_SECCOMP_FILTER, and seccomp(2). Never throws.
 */
export function seccompSupport(): { ok: true } | { ok: false; reason: string } {
  if (process.platform !== "linux") return { ok: false, reason: `not Linux (${process.platform})` };
  try {
    hostKernelArch();
  } catch (e) {
    return { ok: false, reason: (e as Error).message };
  }
  const lib = libcAvailable();
  if (!lib.ok) return lib;
  try {
    const mode = seccompMode();
    if (mode !== 0 && mode !== 2) return { ok: false, reason: `unexpected seccomp mode ${mode}` };
  } catch (e) {
    return { ok: false, reason: `kernel without CONFIG_SECCOMP: ${(e as Error).message}` };
  }
  try {
    if (!actionAvailable(seccompRet("ALLOW"))) return { ok: false, reason: "seccomp reports ALLOW as unavailable" };
  } catch (e) {
    return { ok: false, reason: `seccomp filter mode unavailable: ${(e as Error).message}` };
  }
  return { ok: true };
}
