// The per-architecture part of running a system call inside a stopped tracee (ptrace.ts,
// "Running a system call in another process"): where the registers the kernel reads for a system
// call sit in the buffer ptrace reads and writes, and what the system call instruction is. Pure
// data and buffer arithmetic, so it is unit-tested without a tracee.

import type { Arch } from "../syscalls/index.js";

export interface SyscallRegisterLayout {
  arch: Arch;
  /** Bytes of the register buffer: x86_64's struct user_regs_struct, aarch64's struct user_pt_regs (NT_PRSTATUS). */
  size: number;
  /** Byte offsets in that buffer. */
  nr: number;
  /** The first six arguments, in order. */
  args: readonly number[];
  result: number;
  pc: number;
  sp: number;
  /**
   * x86_64's orig_rax: the system call the kernel considers in progress, in the register buffer
   * itself (set to -1 for the injected call). aarch64 keeps it outside user_pt_regs
   * (NT_ARM_SYSTEM_CALL: ptrace.ts handles it).
   */
  inProgressNr?: number;
  /** The system call instruction's bytes as they lie in memory, and the alignment instructions have. */
  instruction: readonly number[];
  instructionAlign: number;
}

/** struct user_regs_struct: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ss fs_base gs_base ds es fs gs. */
export const X86_64_REGISTERS: SyscallRegisterLayout = Object.freeze({
  arch: "x86_64",
  size: 27 * 8,
  nr: 80, // rax
  args: Object.freeze([112, 104, 96, 56, 72, 64]), // rdi rsi rdx r10 r8 r9
  result: 80, // rax
  pc: 128, // rip
  sp: 152, // rsp
  inProgressNr: 120, // orig_rax
  instruction: Object.freeze([0x0f, 0x05]), // syscall
  instructionAlign: 1,
});

/** struct user_pt_regs { u64 regs[31]; u64 sp; u64 pc; u64 pstate; }. */
export const AARCH64_REGISTERS: SyscallRegisterLayout = Object.freeze({
  arch: "aarch64",
  size: 34 * 8,
  nr: 8 * 8, // x8
  args: Object.freeze([0, 8, 16, 24, 32, 40]), // x0..x5
  result: 0, // x0
  pc: 32 * 8,
  sp: 31 * 8,
  instruction: Object.freeze([0x01, 0x00, 0x00, 0xd4]), // svc #0 (0xd4000001), little-endian
  instructionAlign: 4,
});

export function syscallRegisterLayout(arch: Arch): SyscallRegisterLayout {
  return arch === "aarch64" ? AARCH64_REGISTERS : X86_64_REGISTERS;
}

/**
 * The registers that make the tracee run system call `nr` with `args` at the instruction at `pc`:
 * a copy of `saved` with those set (every other register, the stack pointer included, as it was).
 */
export function syscallRegisters(layout: SyscallRegisterLayout, saved: Buffer, nr: number, args: readonly bigint[], pc: bigint): Buffer {
  if (saved.length !== layout.size) throw new RangeError(`${layout.arch} registers are ${layout.size} bytes, not ${saved.length}`);
  if (args.length > layout.args.length) throw new RangeError(`a system call takes at most ${layout.args.length} arguments`);
  const regs = Buffer.from(saved);
  // Arguments first: on aarch64 the result register x0 is also the first argument's.
  layout.args.forEach((off, i) => regs.writeBigUInt64LE(BigInt.asUintN(64, args[i] ?? 0n), off));
  regs.writeBigUInt64LE(BigInt(nr), layout.nr);
  if (layout.inProgressNr !== undefined) regs.writeBigUInt64LE(0xffffffffffffffffn, layout.inProgressNr);
  regs.writeBigUInt64LE(pc, layout.pc);
  return regs;
}

/** The kernel's return value in the registers read after the call (negative: -errno). */
export function syscallResult(layout: SyscallRegisterLayout, regs: Buffer): bigint {
  return BigInt.asIntN(64, regs.readBigUInt64LE(layout.result));
}

/** The program counter in `regs`. */
export function programCounter(layout: SyscallRegisterLayout, regs: Buffer): bigint {
  return regs.readBigUInt64LE(layout.pc);
}

export function stackPointer(layout: SyscallRegisterLayout, regs: Buffer): bigint {
  return regs.readBigUInt64LE(layout.sp);
}

/**
 * Where an image of `length` bytes goes below stack pointer `sp`: 8 KiB below it (past x86_64's
 * 128-byte red zone; aarch64 has none, but a signal frame or a leaf function's scratch space may
 * still lie just below sp), 16-byte aligned (both ABIs' stack alignment).
 */
export function imageBase(sp: bigint, length: number): bigint {
  return (sp - 8192n - BigInt(16 + length)) & ~0xfn;
}

/** True when `bytes` start with the system call instruction. */
export function isSyscallInstruction(layout: SyscallRegisterLayout, bytes: Uint8Array): boolean {
  return layout.instruction.every((b, i) => bytes[i] === b);
}

/** The offset of the first system call instruction in `code` at the instruction alignment, or -1. */
export function findSyscallInstruction(layout: SyscallRegisterLayout, code: Buffer): number {
  const needle = Buffer.from(layout.instruction);
  for (let at = code.indexOf(needle); at >= 0; at = code.indexOf(needle, at + 1)) {
    if (at % layout.instructionAlign === 0) return at;
  }
  return -1;
}
