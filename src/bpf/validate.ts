// What the kernel accepts as a seccomp filter, checked in userspace.
//
// Mirrors, in one pass that reports every problem instead of stopping at the first:
//   - bpf_check_basics_ok (net/core/filter.c): 1 <= length <= BPF_MAXINSNS;
//   - bpf_check_classic (net/core/filter.c): known classic opcode, DIV/MOD by constant 0,
//     LSH/RSH by a constant >= 32, scratch slot < BPF_MEMWORDS, jump targets inside the
//     program, last instruction a RET, and check_load_and_stores (no read of a scratch
//     slot that some path to it has not written);
//   - seccomp_check_filter (kernel/seccomp.c): the seccomp allow-list of opcodes, and
//     LD|W|ABS offsets 4-byte aligned and inside struct seccomp_data (64 bytes).
// Pure code: no I/O.

import {
  BPF_ABS,
  BPF_ALU,
  BPF_B,
  BPF_H,
  BPF_IMM,
  BPF_IND,
  BPF_JMP,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_MAXINSNS,
  BPF_MEM,
  BPF_MEMWORDS,
  BPF_MISC,
  BPF_MSH,
  BPF_RET,
  BPF_ST,
  BPF_STX,
  BPF_TAX,
  BPF_TXA,
  BPF_W,
  BPF_A,
  BPF_K,
  BPF_X,
  BPF_ADD,
  BPF_SUB,
  BPF_MUL,
  BPF_DIV,
  BPF_MOD,
  BPF_AND,
  BPF_OR,
  BPF_XOR,
  BPF_LSH,
  BPF_RSH,
  BPF_NEG,
  BPF_JA,
  BPF_JEQ,
  BPF_JGT,
  BPF_JGE,
  BPF_JSET,
  type Insn,
} from "./insn.js";
import { SECCOMP_DATA_SIZE } from "../seccomp/index.js";

/** Classic BPF opcodes the kernel knows (chk_code_allowed), with a bpf_asm-style shape. */
const CLASSIC_OPCODES: ReadonlyMap<number, string> = new Map<number, string>([
  [BPF_ALU | BPF_ADD | BPF_K, "add #k"],
  [BPF_ALU | BPF_ADD | BPF_X, "add x"],
  [BPF_ALU | BPF_SUB | BPF_K, "sub #k"],
  [BPF_ALU | BPF_SUB | BPF_X, "sub x"],
  [BPF_ALU | BPF_MUL | BPF_K, "mul #k"],
  [BPF_ALU | BPF_MUL | BPF_X, "mul x"],
  [BPF_ALU | BPF_DIV | BPF_K, "div #k"],
  [BPF_ALU | BPF_DIV | BPF_X, "div x"],
  [BPF_ALU | BPF_MOD | BPF_K, "mod #k"],
  [BPF_ALU | BPF_MOD | BPF_X, "mod x"],
  [BPF_ALU | BPF_AND | BPF_K, "and #k"],
  [BPF_ALU | BPF_AND | BPF_X, "and x"],
  [BPF_ALU | BPF_OR | BPF_K, "or #k"],
  [BPF_ALU | BPF_OR | BPF_X, "or x"],
  [BPF_ALU | BPF_XOR | BPF_K, "xor #k"],
  [BPF_ALU | BPF_XOR | BPF_X, "xor x"],
  [BPF_ALU | BPF_LSH | BPF_K, "lsh #k"],
  [BPF_ALU | BPF_LSH | BPF_X, "lsh x"],
  [BPF_ALU | BPF_RSH | BPF_K, "rsh #k"],
  [BPF_ALU | BPF_RSH | BPF_X, "rsh x"],
  [BPF_ALU | BPF_NEG, "neg"],
  [BPF_LD | BPF_W | BPF_ABS, "ld [k]"],
  [BPF_LD | BPF_H | BPF_ABS, "ldh [k]"],
  [BPF_LD | BPF_B | BPF_ABS, "ldb [k]"],
  [BPF_LD | BPF_W | BPF_LEN, "ld #len"],
  [BPF_LD | BPF_W | BPF_IND, "ld [x+k]"],
  [BPF_LD | BPF_H | BPF_IND, "ldh [x+k]"],
  [BPF_LD | BPF_B | BPF_IND, "ldb [x+k]"],
  [BPF_LD | BPF_IMM, "ld #k"],
  [BPF_LD | BPF_MEM, "ld M[k]"],
  [BPF_LDX | BPF_W | BPF_LEN, "ldx #len"],
  [BPF_LDX | BPF_B | BPF_MSH, "ldxb 4*([k]&0xf)"],
  [BPF_LDX | BPF_IMM, "ldx #k"],
  [BPF_LDX | BPF_MEM, "ldx M[k]"],
  [BPF_ST, "st M[k]"],
  [BPF_STX, "stx M[k]"],
  [BPF_MISC | BPF_TAX, "tax"],
  [BPF_MISC | BPF_TXA, "txa"],
  [BPF_RET | BPF_K, "ret #k"],
  [BPF_RET | BPF_A, "ret a"],
  [BPF_JMP | BPF_JA, "ja"],
  [BPF_JMP | BPF_JEQ | BPF_K, "jeq #k"],
  [BPF_JMP | BPF_JEQ | BPF_X, "jeq x"],
  [BPF_JMP | BPF_JGE | BPF_K, "jge #k"],
  [BPF_JMP | BPF_JGE | BPF_X, "jge x"],
  [BPF_JMP | BPF_JGT | BPF_K, "jgt #k"],
  [BPF_JMP | BPF_JGT | BPF_X, "jgt x"],
  [BPF_JMP | BPF_JSET | BPF_K, "jset #k"],
  [BPF_JMP | BPF_JSET | BPF_X, "jset x"],
]);

/** Classic opcodes that seccomp_check_filter lets through (everything else: -EINVAL). */
const SECCOMP_OPCODES: ReadonlySet<number> = new Set<number>([
  BPF_LD | BPF_W | BPF_ABS,
  BPF_LD | BPF_W | BPF_LEN,
  BPF_LDX | BPF_W | BPF_LEN,
  BPF_RET | BPF_K,
  BPF_RET | BPF_A,
  BPF_ALU | BPF_ADD | BPF_K,
  BPF_ALU | BPF_ADD | BPF_X,
  BPF_ALU | BPF_SUB | BPF_K,
  BPF_ALU | BPF_SUB | BPF_X,
  BPF_ALU | BPF_MUL | BPF_K,
  BPF_ALU | BPF_MUL | BPF_X,
  BPF_ALU | BPF_DIV | BPF_K,
  BPF_ALU | BPF_DIV | BPF_X,
  BPF_ALU | BPF_AND | BPF_K,
  BPF_ALU | BPF_AND | BPF_X,
  BPF_ALU | BPF_OR | BPF_K,
  BPF_ALU | BPF_OR | BPF_X,
  BPF_ALU | BPF_XOR | BPF_K,
  BPF_ALU | BPF_XOR | BPF_X,
  BPF_ALU | BPF_LSH | BPF_K,
  BPF_ALU | BPF_LSH | BPF_X,
  BPF_ALU | BPF_RSH | BPF_K,
  BPF_ALU | BPF_RSH | BPF_X,
  BPF_ALU | BPF_NEG,
  BPF_LD | BPF_IMM,
  BPF_LDX | BPF_IMM,
  BPF_MISC | BPF_TAX,
  BPF_MISC | BPF_TXA,
  BPF_LD | BPF_MEM,
  BPF_LDX | BPF_MEM,
  BPF_ST,
  BPF_STX,
  BPF_JMP | BPF_JA,
  BPF_JMP | BPF_JEQ | BPF_K,
  BPF_JMP | BPF_JEQ | BPF_X,
  BPF_JMP | BPF_JGE | BPF_K,
  BPF_JMP | BPF_JGE | BPF_X,
  BPF_JMP | BPF_JGT | BPF_K,
  BPF_JMP | BPF_JGT | BPF_X,
  BPF_JMP | BPF_JSET | BPF_K,
  BPF_JMP | BPF_JSET | BPF_X,
]);

/** "0x15 (jeq #k)" / "0xff (unknown)" — for messages. */
export function describeOpcode(code: number): string {
  const shape = CLASSIC_OPCODES.get(code);
  return `0x${code.toString(16).padStart(2, "0")} (${shape ?? "unknown opcode"})`;
}

/** True for an opcode seccomp_check_filter accepts. */
export function isSeccompOpcode(code: number): boolean {
  return SECCOMP_OPCODES.has(code);
}

/** True for BPF_JMP|{JEQ,JGT,JGE,JSET}|{K,X} (two targets, jt and jf). */
export function isConditionalJump(code: number): boolean {
  return (code & 0x07) === BPF_JMP && code !== (BPF_JMP | BPF_JA) && SECCOMP_OPCODES.has(code);
}

function isScratchOp(code: number): boolean {
  return code === (BPF_LD | BPF_MEM) || code === (BPF_LDX | BPF_MEM) || code === BPF_ST || code === BPF_STX;
}

function isUint(v: unknown, bits: number): v is number {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 && v < 2 ** bits;
}

/**
 * Problems with one instruction taken on its own: field widths, opcode, operand ranges.
 * Jump targets (which need the program length) are not checked here. Messages have no
 * "insn N:" prefix.
 */
export function checkInsnOperands(ins: Insn): string[] {
  const out: string[] = [];
  if (!isUint(ins.code, 16)) out.push(`code ${String(ins.code)} is not a 16-bit unsigned value`);
  if (!isUint(ins.jt, 8)) out.push(`jt ${String(ins.jt)} is not an 8-bit unsigned value`);
  if (!isUint(ins.jf, 8)) out.push(`jf ${String(ins.jf)} is not an 8-bit unsigned value`);
  if (!isUint(ins.k, 32)) out.push(`k ${String(ins.k)} is not a 32-bit unsigned value`);
  if (out.length > 0) return out;

  const { code, k } = ins;
  if (!SECCOMP_OPCODES.has(code)) {
    if (CLASSIC_OPCODES.has(code)) {
      out.push(`opcode ${describeOpcode(code)} is classic BPF but seccomp does not allow it`);
    } else {
      out.push(`unknown opcode 0x${code.toString(16).padStart(2, "0")}`);
    }
    return out;
  }
  switch (code) {
    case BPF_LD | BPF_W | BPF_ABS:
      if (k >= SECCOMP_DATA_SIZE) {
        out.push(`load offset ${k} is outside struct seccomp_data (${SECCOMP_DATA_SIZE} bytes)`);
      } else if (k % 4 !== 0) {
        out.push(`load offset ${k} is not 4-byte aligned`);
      }
      break;
    case BPF_ALU | BPF_DIV | BPF_K:
      if (k === 0) out.push("division by constant zero");
      break;
    case BPF_ALU | BPF_LSH | BPF_K:
    case BPF_ALU | BPF_RSH | BPF_K:
      if (k >= 32) out.push(`shift by constant ${k}; the kernel requires a shift amount below 32`);
      break;
    case BPF_LD | BPF_MEM:
    case BPF_LDX | BPF_MEM:
    case BPF_ST:
    case BPF_STX:
      if (k >= BPF_MEMWORDS) {
        out.push(`scratch slot M[${k}] does not exist (slots are M[0]..M[${BPF_MEMWORDS - 1}])`);
      }
      break;
    default:
      break;
  }
  return out;
}

/**
 * Indexes of LD/LDX M[k] instructions that read a scratch slot which some path to them
 * has not written — the kernel's check_load_and_stores, done the same way: one forward
 * pass with a per-instruction "slots surely written" mask, intersected at jump targets.
 * (Like the kernel, the state after a RET flows into the next instruction.)
 * Instructions with out-of-range operands or targets are skipped rather than trusted.
 */
export function uninitializedScratchReads(prog: readonly Insn[]): number[] {
  const n = prog.length;
  const masks = new Uint16Array(n).fill(0xffff);
  const bad: number[] = [];
  let valid = 0;
  for (let pc = 0; pc < n; pc++) {
    const ins = prog[pc]!;
    valid &= masks[pc]!;
    const { code, k } = ins;
    if (isScratchOp(code)) {
      if (!isUint(k, 32) || k >= BPF_MEMWORDS) continue;
      if (code === BPF_ST || code === BPF_STX) {
        valid |= 1 << k;
      } else if ((valid & (1 << k)) === 0) {
        bad.push(pc);
      }
    } else if (code === (BPF_JMP | BPF_JA)) {
      const t = pc + 1 + k;
      if (isUint(k, 32) && t < n) masks[t]! &= valid;
      valid = 0xffff;
    } else if (isConditionalJump(code)) {
      const t1 = pc + 1 + ins.jt;
      const t2 = pc + 1 + ins.jf;
      if (isUint(ins.jt, 8) && t1 < n) masks[t1]! &= valid;
      if (isUint(ins.jf, 8) && t2 < n) masks[t2]! &= valid;
      valid = 0xffff;
    }
  }
  return bad;
}

/**
 * Every reason the kernel would refuse `prog` as a seccomp filter (SECCOMP_SET_MODE_FILTER
 * would fail with EINVAL); an empty array means the kernel accepts it.
 * Each message names the instruction index, e.g.
 * "insn 12: jump target 4100 is past the end of the program (length 200)".
 */
export function validateProgram(prog: readonly Insn[]): string[] {
  const n = prog.length;
  const errors: string[] = [];
  if (n === 0) {
    errors.push(`program is empty; the kernel requires 1..${BPF_MAXINSNS} instructions`);
    return errors;
  }
  if (n > BPF_MAXINSNS) {
    errors.push(`program has ${n} instructions; the kernel accepts at most ${BPF_MAXINSNS} (BPF_MAXINSNS)`);
  }
  for (let pc = 0; pc < n; pc++) {
    const ins = prog[pc]!;
    const problems = checkInsnOperands(ins);
    for (const p of problems) errors.push(`insn ${pc}: ${p}`);
    if (problems.length > 0) continue;
    if (ins.code === (BPF_JMP | BPF_JA)) {
      const target = pc + 1 + ins.k;
      if (target >= n) {
        errors.push(`insn ${pc}: jump target ${target} is past the end of the program (length ${n})`);
      }
    } else if (isConditionalJump(ins.code)) {
      const tt = pc + 1 + ins.jt;
      const tf = pc + 1 + ins.jf;
      if (tt >= n) errors.push(`insn ${pc}: jump target ${tt} (jt) is past the end of the program (length ${n})`);
      if (tf >= n) errors.push(`insn ${pc}: jump target ${tf} (jf) is past the end of the program (length ${n})`);
    }
  }
  const last = prog[n - 1]!;
  if (last.code !== (BPF_RET | BPF_K) && last.code !== (BPF_RET | BPF_A)) {
    errors.push(
      `insn ${n - 1}: the last instruction must be a RET, found opcode ${
        isUint(last.code, 16) ? describeOpcode(last.code) : String(last.code)
      }`,
    );
  }
  for (const pc of uninitializedScratchReads(prog)) {
    const ins = prog[pc]!;
    const reg = ins.code === (BPF_LD | BPF_MEM) ? "A" : "X";
    errors.push(
      `insn ${pc}: reads M[${ins.k}] into ${reg}, but M[${ins.k}] is not written on every path to this instruction`,
    );
  }
  return errors;
}

/** Thrown by assertValidProgram (and the emulator) for a program the kernel would reject. */
export class InvalidProgramError extends Error {
  readonly errors: readonly string[];
  constructor(errors: readonly string[]) {
    const shown = errors.slice(0, 10).join("\n  ");
    const more = errors.length > 10 ? `\n  ... and ${errors.length - 10} more` : "";
    super(`invalid seccomp BPF program (${errors.length} problem${errors.length === 1 ? "" : "s"}):\n  ${shown}${more}`);
    this.name = "InvalidProgramError";
    this.errors = errors;
  }
}

/** Throws InvalidProgramError listing every problem when validateProgram finds any. */
export function assertValidProgram(prog: readonly Insn[]): void {
  const errors = validateProgram(prog);
  if (errors.length > 0) throw new InvalidProgramError(errors);
}
