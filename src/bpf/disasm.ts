// Readable text for a seccomp BPF program, in the spirit of libseccomp's scmp_bpf_disasm.
// The format is exactly what assemble() (asm.ts) parses back, so that
// assemble(disassemble(P)) deep-equals P for every program P the kernel accepts
// (and for most it does not). Pure code: no I/O.
//
//   ; seccomp BPF program: 5 instructions
//   0000: ld  [arch]
//   0001: jeq #0xc000003e, L0002, L0004         ; x86_64
//   0002: ld  [nr]
//   0003: ret ALLOW
//   0004: ret KILL_PROCESS
//
// With { raw: true } each line also carries the struct sock_filter fields
// (code, jt, jf — decimal, relative — and k) between the index and the mnemonic:
//
//   0001: 0x15     0   2 0xc000003e  jeq #0xc000003e, L0002, L0004         ; x86_64
//
// Jump targets are absolute instruction indexes written L<index> (at least 4 digits).
// An instruction the mnemonic syntax cannot express exactly — an opcode seccomp does not
// allow, an out-of-range operand, or a nonzero field the opcode ignores — is printed as
// `.insn code, jt, jf, k` with a comment saying why.

import {
  BPF_ABS,
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_DIV,
  BPF_IMM,
  BPF_JA,
  BPF_JEQ,
  BPF_JGE,
  BPF_JGT,
  BPF_JMP,
  BPF_JSET,
  BPF_K,
  BPF_LD,
  BPF_LDX,
  BPF_LEN,
  BPF_LSH,
  BPF_MEM,
  BPF_MISC,
  BPF_MUL,
  BPF_NEG,
  BPF_OR,
  BPF_RET,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_SUB,
  BPF_TAX,
  BPF_TXA,
  BPF_W,
  BPF_A,
  BPF_X,
  BPF_XOR,
  type Insn,
} from "./insn.js";
import { AUDIT_ARCH_NAMES, X32_SYSCALL_BIT, dataFieldName, formatSeccompRet } from "../seccomp/index.js";
import { checkInsnOperands, describeOpcode } from "./validate.js";

export interface DisassembleOptions {
  /** Also print the raw struct sock_filter fields (code, jt, jf, k) on each line. */
  raw?: boolean;
  /** Print the leading `;` header comment (default true). */
  header?: boolean;
  /**
   * Names syscall numbers in comments on comparisons against a freshly loaded [nr]
   * (e.g. `jeq #257, L0009, L0010  ; openat`). Return undefined for unknown numbers.
   */
  syscallName?: (nr: number) => string | undefined;
}

/** "L0042": how an absolute jump target is written. */
export function formatTarget(index: number): string {
  return "L" + String(index).padStart(4, "0");
}

const ALU_NAMES: ReadonlyMap<number, string> = new Map([
  [BPF_ADD, "add"],
  [BPF_SUB, "sub"],
  [BPF_MUL, "mul"],
  [BPF_DIV, "div"],
  [BPF_OR, "or"],
  [BPF_AND, "and"],
  [BPF_LSH, "lsh"],
  [BPF_RSH, "rsh"],
  [BPF_XOR, "xor"],
]);

const JUMP_NAMES: ReadonlyMap<number, string> = new Map([
  [BPF_JEQ, "jeq"],
  [BPF_JGT, "jgt"],
  [BPF_JGE, "jge"],
  [BPF_JSET, "jset"],
]);

function hex(n: number): string {
  return "0x" + (n >>> 0).toString(16);
}

/** Opcode: 0x15, 0x06 (at least two digits). */
function hexCode(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(2, "0");
}

function hex8(n: number): string {
  return "0x" + (n >>> 0).toString(16).padStart(8, "0");
}

/** `#5`, `#0xc000003e`: bit masks and large values in hex, small counts in decimal. */
function imm(k: number, bitwise: boolean): string {
  return "#" + (bitwise || k > 0xffff ? hex(k) : String(k));
}

/**
 * The mnemonic form [op, operands] of one instruction at index `pc`, or undefined when
 * the syntax cannot express it exactly (see the file comment); then `.insn` is used.
 */
function mnemonic(ins: Insn, pc: number): [string, string] | undefined {
  if (checkInsnOperands(ins).length > 0) return undefined;
  const { code, jt, jf, k } = ins;
  const noJumps = jt === 0 && jf === 0;
  const bare = noJumps && k === 0; // opcode that uses none of jt, jf, k
  switch (code) {
    case BPF_LD | BPF_W | BPF_ABS:
      return noJumps ? ["ld", `[${dataFieldName(k)!}]`] : undefined;
    case BPF_LD | BPF_W | BPF_LEN:
      return bare ? ["ld", "#len"] : undefined;
    case BPF_LDX | BPF_W | BPF_LEN:
      return bare ? ["ldx", "#len"] : undefined;
    case BPF_LD | BPF_IMM:
      return noJumps ? ["ldi", imm(k, false)] : undefined;
    case BPF_LDX | BPF_IMM:
      return noJumps ? ["ldxi", imm(k, false)] : undefined;
    case BPF_LD | BPF_MEM:
      return noJumps ? ["ld", `M[${k}]`] : undefined;
    case BPF_LDX | BPF_MEM:
      return noJumps ? ["ldx", `M[${k}]`] : undefined;
    case BPF_ST:
      return noJumps ? ["st", `M[${k}]`] : undefined;
    case BPF_STX:
      return noJumps ? ["stx", `M[${k}]`] : undefined;
    case BPF_ALU | BPF_NEG:
      return bare ? ["neg", ""] : undefined;
    case BPF_MISC | BPF_TAX:
      return bare ? ["tax", ""] : undefined;
    case BPF_MISC | BPF_TXA:
      return bare ? ["txa", ""] : undefined;
    case BPF_RET | BPF_A:
      return bare ? ["ret", "A"] : undefined;
    case BPF_RET | BPF_K:
      return noJumps ? ["ret", formatSeccompRet(k) ?? "#" + hex(k)] : undefined;
    case BPF_JMP | BPF_JA:
      return noJumps ? ["ja", formatTarget(pc + 1 + k)] : undefined;
    default:
      break;
  }
  const cls = code & 0x07;
  const op = code & 0xf0;
  const isX = (code & BPF_X) !== 0;
  if (cls === BPF_ALU) {
    const name = ALU_NAMES.get(op)!;
    if (isX) return bare ? [name, "x"] : undefined;
    return noJumps ? [name, imm(k, op === BPF_AND || op === BPF_OR || op === BPF_XOR)] : undefined;
  }
  if (cls === BPF_JMP) {
    const name = JUMP_NAMES.get(op)!;
    if (isX && k !== 0) return undefined;
    const src = isX ? "x" : imm(k, op === BPF_JSET);
    return [name, `${src}, ${formatTarget(pc + 1 + jt)}, ${formatTarget(pc + 1 + jf)}`];
  }
  return undefined;
}

// What the accumulator is known to hold, for comments only.
const A_OTHER = 0; // a known value that is neither nr nor arch
const A_NR = 1;
const A_ARCH = 2;
const A_UNKNOWN = 3;
const A_NONE = -1; // no path reaches here (yet)

function merge(a: number, b: number): number {
  if (a === A_NONE) return b;
  if (b === A_NONE) return a;
  return a === b ? a : A_UNKNOWN;
}

/** Per instruction: what A holds on entry (forward dataflow; BPF jumps only go forward). */
function accumulatorSources(prog: readonly Insn[]): Int8Array {
  const n = prog.length;
  const incoming = new Int8Array(n).fill(A_NONE);
  const atEntry = new Int8Array(n);
  let fall = A_OTHER; // A = 0 at entry
  for (let pc = 0; pc < n; pc++) {
    const ins = prog[pc]!;
    let cur = merge(fall, incoming[pc]!);
    if (cur === A_NONE) cur = A_UNKNOWN; // unreachable
    atEntry[pc] = cur;
    const code = ins.code;
    const cls = code & 0x07;
    fall = cur;
    if (code === (BPF_LD | BPF_W | BPF_ABS)) {
      fall = ins.k === 0 ? A_NR : ins.k === 4 ? A_ARCH : A_OTHER;
    } else if (code === (BPF_LD | BPF_MEM)) {
      fall = A_UNKNOWN;
    } else if (cls === BPF_LD || cls === BPF_ALU || code === (BPF_MISC | BPF_TXA)) {
      fall = A_OTHER;
    } else if (cls === BPF_RET) {
      fall = A_NONE;
    } else if (cls === BPF_JMP) {
      const targets = code === (BPF_JMP | BPF_JA) ? [pc + 1 + ins.k] : [pc + 1 + ins.jt, pc + 1 + ins.jf];
      for (const t of targets) {
        if (t < n) incoming[t] = merge(incoming[t]!, cur);
      }
      fall = A_NONE;
    }
  }
  return atEntry;
}

function comment(ins: Insn, aSource: number, opts: DisassembleOptions): string | undefined {
  const { code, k } = ins;
  if ((code & 0x07) !== BPF_JMP || (code & BPF_X) !== 0 || code === (BPF_JMP | BPF_JA)) return undefined;
  if (aSource === A_ARCH || aSource === A_UNKNOWN) {
    const arch = AUDIT_ARCH_NAMES.get(k);
    if (arch !== undefined) return arch;
  }
  if (aSource === A_NR) {
    const name = opts.syscallName?.(k);
    if (name !== undefined) return name;
    if (k === X32_SYSCALL_BIT && (code & 0xf0) !== BPF_JEQ) return "x32 syscall bit";
  }
  return undefined;
}

/** Why an instruction is printed as `.insn`. */
function rawReason(ins: Insn): string {
  const problems = checkInsnOperands(ins);
  if (problems.length > 0) return problems.join("; ");
  return `opcode ${describeOpcode(ins.code)} with nonzero fields it does not use (the kernel ignores them)`;
}

/** The instruction text alone (no index, raw fields or comment): `jeq #5, L0003, L0004`. */
export function formatInsn(ins: Insn, pc: number): string {
  const m = mnemonic(ins, pc);
  if (m === undefined) {
    return `.insn ${hexCode(ins.code)}, ${ins.jt}, ${ins.jf}, ${hex8(ins.k)}`;
  }
  const [op, args] = m;
  return args === "" ? op : `${op.padEnd(3)} ${args}`;
}

const COMMENT_COLUMN = 36;

/**
 * The program as text: a `;` header, then one line per instruction,
 * `NNNN: [raw fields] mnemonic [; comment]`. See the file comment for the format.
 */
export function disassemble(prog: readonly Insn[], opts: DisassembleOptions = {}): string {
  const lines: string[] = [];
  if (opts.header !== false) {
    lines.push(`; seccomp BPF program: ${prog.length} instruction${prog.length === 1 ? "" : "s"}`);
    if (opts.raw) lines.push("; pc  code    jt  jf k           instruction");
  }
  const sources = accumulatorSources(prog);
  for (let pc = 0; pc < prog.length; pc++) {
    const ins = prog[pc]!;
    let line = String(pc).padStart(4, "0") + ": ";
    if (opts.raw) {
      line +=
        hexCode(ins.code).padEnd(6) +
        " " +
        String(ins.jt).padStart(3) +
        " " +
        String(ins.jf).padStart(3) +
        " " +
        hex8(ins.k) +
        "  ";
    }
    const text = formatInsn(ins, pc);
    const note = text.startsWith(".insn") ? rawReason(ins) : comment(ins, sources[pc]!, opts);
    line += note === undefined ? text : text.padEnd(COMMENT_COLUMN) + "  ; " + note;
    lines.push(line);
  }
  return lines.join("\n") + "\n";
}

// Opcode constants re-used by asm.ts, kept in one place with the formatter.
export const OPCODES = {
  LD_ABS: BPF_LD | BPF_W | BPF_ABS,
  LD_LEN: BPF_LD | BPF_W | BPF_LEN,
  LDX_LEN: BPF_LDX | BPF_W | BPF_LEN,
  LD_IMM: BPF_LD | BPF_IMM,
  LDX_IMM: BPF_LDX | BPF_IMM,
  LD_MEM: BPF_LD | BPF_MEM,
  LDX_MEM: BPF_LDX | BPF_MEM,
  ST: BPF_ST,
  STX: BPF_STX,
  NEG: BPF_ALU | BPF_NEG,
  TAX: BPF_MISC | BPF_TAX,
  TXA: BPF_MISC | BPF_TXA,
  RET_K: BPF_RET | BPF_K,
  RET_A: BPF_RET | BPF_A,
  JA: BPF_JMP | BPF_JA,
} as const;

/** ALU op bits by mnemonic (add → BPF_ADD, ...); OR with BPF_ALU and BPF_K/BPF_X. */
export const ALU_OPS: ReadonlyMap<string, number> = new Map([...ALU_NAMES].map(([op, name]) => [name, op] as const));
/** Conditional jump op bits by mnemonic (jeq → BPF_JEQ, ...); OR with BPF_JMP and BPF_K/BPF_X. */
export const JUMP_OPS: ReadonlyMap<string, number> = new Map([...JUMP_NAMES].map(([op, name]) => [name, op] as const));
