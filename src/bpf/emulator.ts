// Runs a seccomp classic-BPF program on a struct seccomp_data exactly as the kernel does
// on a little-endian machine. Pure code: no I/O.
//
// Semantics (the kernel converts cBPF to eBPF in bpf_convert_filter, net/core/filter.c,
// and runs that with the interpreter or a JIT; what follows is what that produces):
//   - A and X start at 0; scratch M[] reads of unwritten slots cannot happen in a
//     validated program (check_load_and_stores), so M[] starts zeroed here.
//   - All arithmetic is 32-bit unsigned, wrapping (ALU32 ops zero-extend).
//   - DIV by X == 0 (and MOD by X == 0) ends the program with return value 0, i.e.
//     SECCOMP_RET_KILL_THREAD: the conversion inserts "if X == 0 { A = 0; exit }".
//     Division by a constant 0 is rejected at load time.
//   - LSH/RSH by a constant >= 32 is rejected at load time. LSH/RSH by X use X & 31:
//     that is what the interpreter computes ("(u32) DST OP ((u32) SRC & 31)", kernel/bpf/
//     core.c) and what the x86-64 and arm64 JITs' 32-bit shift instructions do in hardware
//     (the kernel documents the result of oversized shifts as implementation-defined, so
//     another architecture's JIT may differ; the filters we compile never shift).
//   - Comparisons (JEQ/JGT/JGE) are unsigned 32-bit; JSET tests A & operand != 0.
//   - LD [k] reads the 32-bit little-endian word at byte k of struct seccomp_data:
//     0 nr, 4 arch, 8/12 instruction_pointer lo/hi, 16+8i/20+8i args[i] lo/hi.
//   - LD/LDX #len (BPF_W|BPF_LEN) load 64, sizeof(struct seccomp_data) (seccomp rewrites it).

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
  BPF_MEMWORDS,
  BPF_MISC,
  BPF_MOD,
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
import { SECCOMP_DATA_SIZE, type SeccompData } from "../seccomp/index.js";
import { assertValidProgram } from "./validate.js";

export { InvalidProgramError, validateProgram } from "./validate.js";

export interface EmulateResult {
  /** The filter's return value, unsigned 32-bit. */
  ret: number;
  /** Instructions executed, including the final RET (or the DIV/MOD that hit X == 0). */
  executed: number;
  /** Indexes of the executed instructions in order; only with { recordPath: true }. */
  path?: number[];
  /** Set when the program ended early on DIV/MOD by X == 0 (ret is then 0). */
  divisionByZero?: true;
}

export interface RunOptions {
  /** Record the executed instruction indexes in `path`. */
  recordPath?: boolean;
}

export interface CompileFilterOptions {
  /**
   * Skip validateProgram (caller guarantees the program is valid). An invalid program may
   * then throw while running (unknown opcode, running off the end) or give results the
   * kernel would never produce, since it would refuse to load it.
   */
  skipValidation?: boolean;
}

export type EmulateOptions = RunOptions & CompileFilterOptions;

/** A program prepared once for many runs. */
export type CompiledFilter = (data: SeccompData, opts?: RunOptions) => EmulateResult;

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;
const LD_LEN = BPF_LD | BPF_W | BPF_LEN;
const LDX_LEN = BPF_LDX | BPF_W | BPF_LEN;
const LD_IMM = BPF_LD | BPF_IMM;
const LDX_IMM = BPF_LDX | BPF_IMM;
const LD_MEM = BPF_LD | BPF_MEM;
const LDX_MEM = BPF_LDX | BPF_MEM;
const ADD_K = BPF_ALU | BPF_ADD | BPF_K;
const ADD_X = BPF_ALU | BPF_ADD | BPF_X;
const SUB_K = BPF_ALU | BPF_SUB | BPF_K;
const SUB_X = BPF_ALU | BPF_SUB | BPF_X;
const MUL_K = BPF_ALU | BPF_MUL | BPF_K;
const MUL_X = BPF_ALU | BPF_MUL | BPF_X;
const DIV_K = BPF_ALU | BPF_DIV | BPF_K;
const DIV_X = BPF_ALU | BPF_DIV | BPF_X;
const MOD_K = BPF_ALU | BPF_MOD | BPF_K;
const MOD_X = BPF_ALU | BPF_MOD | BPF_X;
const AND_K = BPF_ALU | BPF_AND | BPF_K;
const AND_X = BPF_ALU | BPF_AND | BPF_X;
const OR_K = BPF_ALU | BPF_OR | BPF_K;
const OR_X = BPF_ALU | BPF_OR | BPF_X;
const XOR_K = BPF_ALU | BPF_XOR | BPF_K;
const XOR_X = BPF_ALU | BPF_XOR | BPF_X;
const LSH_K = BPF_ALU | BPF_LSH | BPF_K;
const LSH_X = BPF_ALU | BPF_LSH | BPF_X;
const RSH_K = BPF_ALU | BPF_RSH | BPF_K;
const RSH_X = BPF_ALU | BPF_RSH | BPF_X;
const NEG = BPF_ALU | BPF_NEG;
const JA = BPF_JMP | BPF_JA;
const JEQ_K = BPF_JMP | BPF_JEQ | BPF_K;
const JEQ_X = BPF_JMP | BPF_JEQ | BPF_X;
const JGT_K = BPF_JMP | BPF_JGT | BPF_K;
const JGT_X = BPF_JMP | BPF_JGT | BPF_X;
const JGE_K = BPF_JMP | BPF_JGE | BPF_K;
const JGE_X = BPF_JMP | BPF_JGE | BPF_X;
const JSET_K = BPF_JMP | BPF_JSET | BPF_K;
const JSET_X = BPF_JMP | BPF_JSET | BPF_X;
const RET_K = BPF_RET | BPF_K;
const RET_A = BPF_RET | BPF_A;
const TAX = BPF_MISC | BPF_TAX;
const TXA = BPF_MISC | BPF_TXA;

const MASK32 = 0xffffffffn;

/**
 * The sixteen 32-bit words of struct seccomp_data as a little-endian machine lays them out
 * (word i is bytes 4i..4i+3). Fills and returns `out` when given.
 */
export function seccompDataWords(data: SeccompData, out: Uint32Array = new Uint32Array(16)): Uint32Array {
  out[0] = data.nr >>> 0;
  out[1] = data.arch >>> 0;
  const ip = BigInt.asUintN(64, data.instructionPointer);
  out[2] = Number(ip & MASK32);
  out[3] = Number(ip >> 32n);
  for (let i = 0; i < 6; i++) {
    const a = BigInt.asUintN(64, data.args[i] ?? 0n);
    out[4 + 2 * i] = Number(a & MASK32);
    out[5 + 2 * i] = Number(a >> 32n);
  }
  return out;
}

// Per-run scratch state, reused (runs are synchronous and never nest).
const WORDS = new Uint32Array(16);
const MEM = new Uint32Array(BPF_MEMWORDS);

/** Validates (unless told not to) and prepares `prog` for repeated runs. */
export function compileFilter(prog: readonly Insn[], opts: CompileFilterOptions = {}): CompiledFilter {
  if (!opts.skipValidation) assertValidProgram(prog);
  const n = prog.length;
  const codes = new Uint32Array(n);
  const jts = new Uint32Array(n);
  const jfs = new Uint32Array(n);
  const ks = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const ins = prog[i]!;
    codes[i] = ins.code;
    jts[i] = ins.jt;
    jfs[i] = ins.jf;
    ks[i] = ins.k;
  }
  return (data: SeccompData, runOpts?: RunOptions): EmulateResult => {
    seccompDataWords(data, WORDS);
    return run(codes, jts, jfs, ks, WORDS, runOpts?.recordPath === true ? [] : undefined);
  };
}

/**
 * Runs `prog` on `data`. Validates first and throws InvalidProgramError (listing every
 * problem) for a program the kernel would refuse; for many runs of one program use
 * compileFilter, which validates once.
 */
export function emulate(prog: readonly Insn[], data: SeccompData, opts: EmulateOptions = {}): EmulateResult {
  return compileFilter(prog, opts)(data, opts);
}

function run(
  codes: Uint32Array,
  jts: Uint32Array,
  jfs: Uint32Array,
  ks: Uint32Array,
  words: Uint32Array,
  path: number[] | undefined,
): EmulateResult {
  const n = codes.length;
  const mem = MEM;
  mem.fill(0);
  let a = 0;
  let x = 0;
  let pc = 0;
  let executed = 0;
  for (;;) {
    if (pc >= n) throw new Error(`BPF execution ran past the end of the program (pc ${pc}, length ${n})`);
    const code = codes[pc]!;
    const k = ks[pc]!;
    executed++;
    if (path !== undefined) path.push(pc);
    switch (code) {
      case LD_ABS:
        if (k >= SECCOMP_DATA_SIZE || (k & 3) !== 0) throw new Error(`insn ${pc}: bad seccomp_data offset ${k}`);
        a = words[k >>> 2]!;
        pc++;
        break;
      case LD_LEN:
        a = SECCOMP_DATA_SIZE;
        pc++;
        break;
      case LDX_LEN:
        x = SECCOMP_DATA_SIZE;
        pc++;
        break;
      case LD_IMM:
        a = k;
        pc++;
        break;
      case LDX_IMM:
        x = k;
        pc++;
        break;
      case LD_MEM:
        a = mem[k & 15]!;
        pc++;
        break;
      case LDX_MEM:
        x = mem[k & 15]!;
        pc++;
        break;
      case BPF_ST:
        mem[k & 15] = a;
        pc++;
        break;
      case BPF_STX:
        mem[k & 15] = x;
        pc++;
        break;
      case ADD_K:
        a = (a + k) >>> 0;
        pc++;
        break;
      case ADD_X:
        a = (a + x) >>> 0;
        pc++;
        break;
      case SUB_K:
        a = (a - k) >>> 0;
        pc++;
        break;
      case SUB_X:
        a = (a - x) >>> 0;
        pc++;
        break;
      case MUL_K:
        a = Math.imul(a, k) >>> 0;
        pc++;
        break;
      case MUL_X:
        a = Math.imul(a, x) >>> 0;
        pc++;
        break;
      case DIV_K:
        // k != 0 in a valid program; both operands < 2^32 so the double quotient floors exactly.
        a = k === 0 ? 0 : Math.floor(a / k);
        pc++;
        break;
      case DIV_X:
        if (x === 0) return finish(0, executed, path, true);
        a = Math.floor(a / x);
        pc++;
        break;
      case MOD_K: // classic BPF only; seccomp refuses BPF_MOD
        a = k === 0 ? a : a % k;
        pc++;
        break;
      case MOD_X:
        if (x === 0) return finish(0, executed, path, true);
        a = a % x;
        pc++;
        break;
      case AND_K:
        a = (a & k) >>> 0;
        pc++;
        break;
      case AND_X:
        a = (a & x) >>> 0;
        pc++;
        break;
      case OR_K:
        a = (a | k) >>> 0;
        pc++;
        break;
      case OR_X:
        a = (a | x) >>> 0;
        pc++;
        break;
      case XOR_K:
        a = (a ^ k) >>> 0;
        pc++;
        break;
      case XOR_X:
        a = (a ^ x) >>> 0;
        pc++;
        break;
      case LSH_K:
        a = (a << (k & 31)) >>> 0;
        pc++;
        break;
      case LSH_X:
        a = (a << (x & 31)) >>> 0;
        pc++;
        break;
      case RSH_K:
        a = a >>> (k & 31);
        pc++;
        break;
      case RSH_X:
        a = a >>> (x & 31);
        pc++;
        break;
      case NEG:
        a = -a >>> 0;
        pc++;
        break;
      case TAX:
        x = a;
        pc++;
        break;
      case TXA:
        a = x;
        pc++;
        break;
      case JA:
        pc += 1 + k;
        break;
      case JEQ_K:
        pc += 1 + (a === k ? jts[pc]! : jfs[pc]!);
        break;
      case JEQ_X:
        pc += 1 + (a === x ? jts[pc]! : jfs[pc]!);
        break;
      case JGT_K:
        pc += 1 + (a > k ? jts[pc]! : jfs[pc]!);
        break;
      case JGT_X:
        pc += 1 + (a > x ? jts[pc]! : jfs[pc]!);
        break;
      case JGE_K:
        pc += 1 + (a >= k ? jts[pc]! : jfs[pc]!);
        break;
      case JGE_X:
        pc += 1 + (a >= x ? jts[pc]! : jfs[pc]!);
        break;
      case JSET_K:
        pc += 1 + ((a & k) !== 0 ? jts[pc]! : jfs[pc]!);
        break;
      case JSET_X:
        pc += 1 + ((a & x) !== 0 ? jts[pc]! : jfs[pc]!);
        break;
      case RET_K:
        return finish(k, executed, path, false);
      case RET_A:
        return finish(a, executed, path, false);
      default:
        throw new Error(`insn ${pc}: opcode 0x${code.toString(16)} is not a seccomp BPF instruction`);
    }
  }
}

function finish(ret: number, executed: number, path: number[] | undefined, divZero: boolean): EmulateResult {
  const r: EmulateResult = { ret: ret >>> 0, executed };
  if (path !== undefined) r.path = path;
  if (divZero) r.divisionByZero = true;
  return r;
}
