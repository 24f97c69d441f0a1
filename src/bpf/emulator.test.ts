import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";

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
  jump,
  stmt,
  type Insn,
} from "./insn.js";
import {
  argOffset, AUDIT_ARCH_AARCH64, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, describeSeccompRet, retAction,
  SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE, SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF, type SeccompData,
} from "../seccomp/index.js";
import {
  InvalidProgramError,
  compileFilter,
  emulate,
  seccompDataWords,
} from "./emulator.js";
import { uninitializedScratchReads, validateProgram } from "./validate.js";

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;
const RET_K = BPF_RET | BPF_K;
const RET_A = stmt(BPF_RET | BPF_A, 0);
const ALLOW = stmt(RET_K, SECCOMP_RET_ALLOW);
const KILL = stmt(RET_K, SECCOMP_RET_KILL_PROCESS);

function data(nr: number, opts: { arch?: number; args?: bigint[]; ip?: bigint } = {}): SeccompData {
  const args = opts.args ?? [];
  return {
    nr,
    arch: opts.arch ?? AUDIT_ARCH_X86_64,
    instructionPointer: opts.ip ?? 0n,
    args: [0, 1, 2, 3, 4, 5].map((i) => args[i] ?? 0n),
  };
}

// 0: ld [arch]; 1: jeq x86_64 ? 2 : 8; 2: ld [nr];
// 3: jeq 0 (read) -> 7 allow; 4: jeq 1 (write) -> 6 errno; 5: jeq 2 (open) -> 9 log else 8 kill
const dispatch: Insn[] = [
  stmt(LD_ABS, 4), //                                      0
  jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 6), // 1 -> 2 / 8
  stmt(LD_ABS, 0), //                                      2
  jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 3, 0), //             3 -> 7 / 4
  jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 1, 0), //             4 -> 6 / 5
  jump(BPF_JMP | BPF_JEQ | BPF_K, 2, 3, 2), //             5 -> 9 / 8
  stmt(RET_K, SECCOMP_RET_ERRNO | 13), //                  6
  ALLOW, //                                                7
  KILL, //                                                 8
  stmt(RET_K, SECCOMP_RET_LOG), //                         9
];

test("arch check and syscall-number dispatch", () => {
  assert.deepEqual(emulate(dispatch, data(0), { recordPath: true }), { ret: SECCOMP_RET_ALLOW, executed: 5, path: [0, 1, 2, 3, 7] });
  assert.equal(emulate(dispatch, data(1)).ret, (SECCOMP_RET_ERRNO | 13) >>> 0);
  assert.equal(emulate(dispatch, data(2)).ret, SECCOMP_RET_LOG);
  assert.deepEqual(emulate(dispatch, data(3), { recordPath: true }).path, [0, 1, 2, 3, 4, 5, 8]);
  assert.equal(emulate(dispatch, data(3)).ret, SECCOMP_RET_KILL_PROCESS);
  // Wrong architecture is killed before nr is looked at.
  const r = emulate(dispatch, data(0, { arch: AUDIT_ARCH_I386 }), { recordPath: true });
  assert.deepEqual(r, { ret: SECCOMP_RET_KILL_PROCESS, executed: 3, path: [0, 1, 8] });
  assert.equal(emulate(dispatch, data(0, { arch: AUDIT_ARCH_AARCH64 })).ret, SECCOMP_RET_KILL_PROCESS);
  // A negative nr (e.g. -1) loads as its 32-bit two's complement.
  assert.equal(emulate([stmt(LD_ABS, 0), RET_A], data(-1)).ret, 0xffffffff);
  // path is only present when asked for.
  assert.equal("path" in emulate(dispatch, data(0)), false);
});

test("64-bit argument compared through its hi and lo halves", () => {
  // allow iff args[2] == 0x1_0000_0002
  const prog: Insn[] = [
    stmt(LD_ABS, argOffset(2, "hi")), //                 0
    jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 3), //         1 -> 2 / 5
    stmt(LD_ABS, argOffset(2, "lo")), //                 2
    jump(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 1), //         3 -> 4 / 5
    ALLOW, //                                            4
    KILL, //                                             5
  ];
  const run = (v: bigint): number => emulate(prog, data(0, { args: [0n, 0n, v] })).ret;
  assert.equal(run(0x1_0000_0002n), SECCOMP_RET_ALLOW);
  assert.equal(run(0x2n), SECCOMP_RET_KILL_PROCESS);
  assert.equal(run(0x2_0000_0002n), SECCOMP_RET_KILL_PROCESS);
  assert.equal(run(0x1_0000_0003n), SECCOMP_RET_KILL_PROCESS);

  // Every word of seccomp_data lands where the kernel puts it on a little-endian machine.
  const d: SeccompData = {
    nr: 59,
    arch: AUDIT_ARCH_X86_64,
    instructionPointer: 0x7fff_1234_5678_9abcn,
    args: [0x1111_2222_3333_4444n, 5n, -1n, 0x8000_0000_0000_0000n, 0n, 0xdead_beefn],
  };
  const at = (k: number): number => emulate([stmt(LD_ABS, k), RET_A], d).ret;
  assert.equal(at(0), 59);
  assert.equal(at(4), AUDIT_ARCH_X86_64);
  assert.equal(at(8), 0x56789abc);
  assert.equal(at(12), 0x7fff1234);
  assert.equal(at(argOffset(0, "lo")), 0x33334444);
  assert.equal(at(argOffset(0, "hi")), 0x11112222);
  assert.equal(at(argOffset(1, "lo")), 5);
  assert.equal(at(argOffset(2, "lo")), 0xffffffff); // -1n is taken as 2^64 - 1
  assert.equal(at(argOffset(2, "hi")), 0xffffffff);
  assert.equal(at(argOffset(3, "hi")), 0x80000000);
  assert.equal(at(argOffset(5, "lo")), 0xdeadbeef);
  assert.equal(at(argOffset(5, "hi")), 0);
  assert.deepEqual(
    [...seccompDataWords(d)],
    [59, AUDIT_ARCH_X86_64, 0x56789abc, 0x7fff1234, 0x33334444, 0x11112222, 5, 0, 0xffffffff, 0xffffffff, 0, 0x80000000, 0, 0, 0xdeadbeef, 0],
  );
});

/** A = a; X = x; <op>; ret A */
function alu(op: number, a: number, operand: number, src: number): number {
  const prog: Insn[] = [
    stmt(BPF_LD | BPF_IMM, a),
    stmt(BPF_LDX | BPF_IMM, operand),
    stmt(BPF_ALU | op | src, src === BPF_K ? operand : 0),
    RET_A,
  ];
  return emulate(prog, data(0)).ret;
}

test("ALU operations are 32-bit unsigned, wrapping", () => {
  const cases: [string, number, number, number, number][] = [
    // name, op, A, operand, expected
    ["add", BPF_ADD, 5, 7, 12],
    ["add wraps", BPF_ADD, 0xffffffff, 1, 0],
    ["add wraps 2", BPF_ADD, 0x80000000, 0x80000001, 1],
    ["sub", BPF_SUB, 7, 5, 2],
    ["sub wraps", BPF_SUB, 0, 1, 0xffffffff],
    ["mul", BPF_MUL, 6, 7, 42],
    ["mul wraps", BPF_MUL, 0x10000, 0x10000, 0],
    ["mul big", BPF_MUL, 0xffffffff, 0xffffffff, 1],
    ["mul big 2", BPF_MUL, 0x12345678, 0x9abcdef0, 0x242d2080], // low 32 bits of the 64-bit product
    ["div", BPF_DIV, 7, 2, 3],
    ["div unsigned", BPF_DIV, 0xffffffff, 2, 0x7fffffff],
    ["div by 1", BPF_DIV, 0xfffffffe, 1, 0xfffffffe],
    ["div large/large", BPF_DIV, 0xffffffff, 0xfffffffe, 1],
    ["and", BPF_AND, 0xf0f0f0f0, 0xff00ff00, 0xf000f000],
    ["or", BPF_OR, 0x80000000, 1, 0x80000001],
    ["xor", BPF_XOR, 0xffffffff, 0x0f0f0f0f, 0xf0f0f0f0],
    ["lsh", BPF_LSH, 1, 31, 0x80000000],
    ["lsh drops bits", BPF_LSH, 0xffffffff, 4, 0xfffffff0],
    ["rsh is logical", BPF_RSH, 0x80000000, 31, 1],
    ["rsh", BPF_RSH, 0xffffffff, 4, 0x0fffffff],
    ["lsh 0", BPF_LSH, 0x1234, 0, 0x1234],
  ];
  for (const [name, op, a, operand, expected] of cases) {
    assert.equal(alu(op, a, operand, BPF_K), expected >>> 0, `${name} (K)`);
    assert.equal(alu(op, a, operand, BPF_X), expected >>> 0, `${name} (X)`);
  }
});

test("NEG, and shifts by X >= 32 use the low 5 bits of X (kernel interpreter / x86-64, arm64)", () => {
  assert.equal(alu(BPF_NEG, 1, 0, BPF_K), 0xffffffff);
  assert.equal(alu(BPF_NEG, 0, 0, BPF_K), 0);
  assert.equal(alu(BPF_NEG, 0x80000000, 0, BPF_K), 0x80000000);
  assert.equal(alu(BPF_NEG, 0xffffffff, 0, BPF_K), 1);
  assert.equal(alu(BPF_LSH, 1, 33, BPF_X), 2);
  assert.equal(alu(BPF_LSH, 1, 32, BPF_X), 1);
  assert.equal(alu(BPF_RSH, 0x80000000, 32, BPF_X), 0x80000000);
  assert.equal(alu(BPF_RSH, 0x80000000, 63, BPF_X), 1);
});

test("DIV by X == 0 ends the program with 0 (SECCOMP_RET_KILL_THREAD)", () => {
  const prog: Insn[] = [
    stmt(BPF_LD | BPF_IMM, 10),
    stmt(BPF_LDX | BPF_IMM, 0),
    stmt(BPF_ALU | BPF_DIV | BPF_X, 0),
    ALLOW,
  ];
  const r = emulate(prog, data(0), { recordPath: true });
  assert.deepEqual(r, { ret: SECCOMP_RET_KILL_THREAD, executed: 3, path: [0, 1, 2], divisionByZero: true });
  assert.equal(describeSeccompRet(r.ret), "KILL_THREAD");
  // MOD is refused by seccomp, but the classic semantics are there for skipValidation users.
  const mod: Insn[] = [stmt(BPF_LD | BPF_IMM, 10), stmt(BPF_ALU | BPF_MOD | BPF_K, 3), RET_A];
  assert.throws(() => emulate(mod, data(0)), InvalidProgramError);
  assert.equal(emulate(mod, data(0), { skipValidation: true }).ret, 1);
});

test("jumps compare unsigned; JSET tests bits; JA skips", () => {
  const cond = (op: number, a: number, k: number): boolean => {
    const prog = [stmt(BPF_LD | BPF_IMM, a), jump(BPF_JMP | op | BPF_K, k, 0, 1), ALLOW, KILL];
    const progX = [stmt(BPF_LD | BPF_IMM, a), stmt(BPF_LDX | BPF_IMM, k), jump(BPF_JMP | op | BPF_X, 0, 0, 1), ALLOW, KILL];
    const r = emulate(prog, data(0)).ret === SECCOMP_RET_ALLOW;
    assert.equal(emulate(progX, data(0)).ret === SECCOMP_RET_ALLOW, r, `X form of op ${op} ${a} ${k}`);
    return r;
  };
  assert.equal(cond(BPF_JEQ, 0xc000003e, 0xc000003e), true);
  assert.equal(cond(BPF_JEQ, 1, 2), false);
  assert.equal(cond(BPF_JGT, 0x80000000, 1), true); // would be false if signed
  assert.equal(cond(BPF_JGT, 5, 5), false);
  assert.equal(cond(BPF_JGE, 5, 5), true);
  assert.equal(cond(BPF_JGE, 0xffffffff, 0x80000000), true);
  assert.equal(cond(BPF_JGE, 0x7fffffff, 0x80000000), false);
  assert.equal(cond(BPF_JSET, 0x80000000, 0x80000000), true);
  assert.equal(cond(BPF_JSET, 0x0f, 0xf0), false);

  const ja: Insn[] = [stmt(BPF_JMP | BPF_JA, 2), KILL, KILL, ALLOW];
  assert.deepEqual(emulate(ja, data(0), { recordPath: true }), { ret: SECCOMP_RET_ALLOW, executed: 2, path: [0, 3] });
});

test("scratch memory, TAX/TXA, LD #len, and RET A", () => {
  const prog: Insn[] = [
    stmt(LD_ABS, argOffset(0, "lo")), //   A = args[0].lo
    stmt(BPF_ST, 4), //                    M[4] = A
    stmt(BPF_MISC | BPF_TAX, 0), //        X = A
    stmt(BPF_ALU | BPF_ADD | BPF_X, 0), // A = 2A
    stmt(BPF_STX, 9), //                   M[9] = X
    stmt(BPF_LDX | BPF_MEM, 4), //         X = M[4]
    stmt(BPF_ALU | BPF_ADD | BPF_X, 0), // A = 3 * args[0].lo
    stmt(BPF_ST, 0), //                    M[0] = A
    stmt(BPF_LD | BPF_MEM, 9), //          A = M[9]
    stmt(BPF_ALU | BPF_SUB | BPF_K, 1), // A = args[0].lo - 1
    stmt(BPF_MISC | BPF_TAX, 0), //        X = A
    stmt(BPF_LD | BPF_MEM, 0), //          A = M[0]
    stmt(BPF_ALU | BPF_SUB | BPF_X, 0), // A = 3v - (v - 1) = 2v + 1
    RET_A,
  ];
  assert.equal(emulate(prog, data(0, { args: [100n] })).ret, 201);
  assert.equal(emulate(prog, data(0, { args: [0x80000000n] })).ret, 1);

  const txa: Insn[] = [stmt(BPF_LDX | BPF_IMM, 0x7fff0000), stmt(BPF_MISC | BPF_TXA, 0), RET_A];
  assert.equal(emulate(txa, data(0)).ret, SECCOMP_RET_ALLOW);

  assert.equal(emulate([stmt(BPF_LD | BPF_W | BPF_LEN, 0), RET_A], data(0)).ret, 64);
  const ldxLen: Insn[] = [stmt(BPF_LDX | BPF_W | BPF_LEN, 0), stmt(BPF_MISC | BPF_TXA, 0), RET_A];
  assert.equal(emulate(ldxLen, data(0)).ret, 64);
  // A and X start at 0.
  assert.equal(emulate([RET_A], data(7)).ret, 0);
  assert.equal(emulate([stmt(BPF_MISC | BPF_TXA, 0), RET_A], data(7)).ret, 0);
});

test("invalid programs throw InvalidProgramError unless validation is skipped", () => {
  assert.throws(() => emulate([], data(0)), InvalidProgramError);
  assert.throws(
    () => emulate([stmt(LD_ABS, 6), RET_A], data(0)),
    (e: unknown) => e instanceof InvalidProgramError && e.errors[0] === "insn 0: load offset 6 is not 4-byte aligned",
  );
  assert.throws(() => compileFilter([stmt(BPF_LD | BPF_IMM, 0)]), /last instruction must be a RET/);
  // Trusted but broken: running off the end is reported, not looped on.
  assert.throws(() => emulate([stmt(BPF_LD | BPF_IMM, 0)], data(0), { skipValidation: true }), /ran past the end/);
});

test("describeSeccompRet and retAction", () => {
  const cases: [number, string][] = [
    [SECCOMP_RET_ALLOW, "ALLOW"],
    [SECCOMP_RET_LOG, "LOG"],
    [SECCOMP_RET_ERRNO | 13, "ERRNO(13)"],
    [SECCOMP_RET_ERRNO, "ERRNO(0)"],
    [SECCOMP_RET_KILL_PROCESS, "KILL_PROCESS"],
    [SECCOMP_RET_KILL_THREAD, "KILL_THREAD"],
    [SECCOMP_RET_TRAP | 5, "TRAP(5)"],
    [SECCOMP_RET_TRAP, "TRAP(0)"],
    [SECCOMP_RET_USER_NOTIF, "USER_NOTIF"],
    [SECCOMP_RET_TRACE | 7, "TRACE(7)"],
    [SECCOMP_RET_ALLOW | 5, "ALLOW(5)"],
    [0x12340000, "UNKNOWN(0x12340000)"],
    [0x00010000, "UNKNOWN(0x00010000)"],
  ];
  for (const [ret, text] of cases) assert.equal(describeSeccompRet(ret), text, `0x${ret.toString(16)}`);
  assert.equal(describeSeccompRet(-0x80000000), "KILL_PROCESS"); // signed view of 0x80000000
  assert.equal(retAction((SECCOMP_RET_ERRNO | 13) >>> 0), SECCOMP_RET_ERRNO);
  assert.equal(retAction(0x8000ffff), SECCOMP_RET_KILL_PROCESS);
  assert.equal(retAction(SECCOMP_RET_ALLOW), SECCOMP_RET_ALLOW);
  assert.equal(retAction(0xffff), 0);
});

// ---------------------------------------------------------------------------------------
// Differential test: the emulator against a deliberately naive reference written with
// BigInt arithmetic over a real little-endian struct seccomp_data buffer.

function reference(prog: readonly Insn[], d: SeccompData): { ret: number; executed: number } {
  const buf = Buffer.alloc(64);
  buf.writeInt32LE(d.nr | 0, 0);
  buf.writeUInt32LE(d.arch >>> 0, 4);
  buf.writeBigUInt64LE(BigInt.asUintN(64, d.instructionPointer), 8);
  for (let i = 0; i < 6; i++) buf.writeBigUInt64LE(BigInt.asUintN(64, d.args[i] ?? 0n), 16 + 8 * i);
  const M = 1n << 32n;
  const w = (v: bigint): bigint => ((v % M) + M) % M;
  let A = 0n;
  let X = 0n;
  const mem: bigint[] = new Array<bigint>(16).fill(0n);
  let pc = 0;
  let executed = 0;
  for (;;) {
    const ins = prog[pc]!;
    executed++;
    const K = BigInt(ins.k);
    const cls = ins.code & 7;
    const src = ins.code & BPF_X ? X : K;
    if (ins.code === LD_ABS) A = BigInt(buf.readUInt32LE(ins.k));
    else if (ins.code === (BPF_LD | BPF_W | BPF_LEN)) A = 64n;
    else if (ins.code === (BPF_LDX | BPF_W | BPF_LEN)) X = 64n;
    else if (ins.code === (BPF_LD | BPF_IMM)) A = K;
    else if (ins.code === (BPF_LDX | BPF_IMM)) X = K;
    else if (ins.code === (BPF_LD | BPF_MEM)) A = mem[ins.k]!;
    else if (ins.code === (BPF_LDX | BPF_MEM)) X = mem[ins.k]!;
    else if (ins.code === BPF_ST) mem[ins.k] = A;
    else if (ins.code === BPF_STX) mem[ins.k] = X;
    else if (ins.code === (BPF_MISC | BPF_TAX)) X = A;
    else if (ins.code === (BPF_MISC | BPF_TXA)) A = X;
    else if (cls === BPF_RET) return { ret: Number(ins.code & BPF_A ? A : K), executed };
    else if (cls === BPF_ALU) {
      switch (ins.code & 0xf0) {
        case BPF_ADD: A = w(A + src); break;
        case BPF_SUB: A = w(A - src); break;
        case BPF_MUL: A = w(A * src); break;
        case BPF_DIV:
          if (src === 0n) return { ret: 0, executed };
          A = A / src;
          break;
        case BPF_AND: A = A & src; break;
        case BPF_OR: A = A | src; break;
        case BPF_XOR: A = A ^ src; break;
        case BPF_LSH: A = w(A << (src % 32n)); break;
        case BPF_RSH: A = A >> (src % 32n); break;
        case BPF_NEG: A = w(-A); break;
        default: throw new Error("reference: bad ALU op");
      }
    } else if (ins.code === (BPF_JMP | BPF_JA)) {
      pc += ins.k;
    } else if (cls === BPF_JMP) {
      let taken: boolean;
      switch (ins.code & 0xf0) {
        case BPF_JEQ: taken = A === src; break;
        case BPF_JGT: taken = A > src; break;
        case BPF_JGE: taken = A >= src; break;
        case BPF_JSET: taken = (A & src) !== 0n; break;
        default: throw new Error("reference: bad jump");
      }
      pc += taken ? ins.jt : ins.jf;
    } else {
      throw new Error(`reference: bad opcode ${ins.code}`);
    }
    pc++;
  }
}

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 2, 31, 32, 63, 0x7fffffff, 0x80000000, 0xffffffff, 0xc000003e, 0x7fff0000),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const ALU_OPS = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_XOR];
const JMP_OPS = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET];

/** Random programs the validator accepts, built from random "genes" by construction. */
const validProgram = fc
  .array(fc.record({ kind: fc.nat(19), a: u32, b: fc.nat(255), c: fc.nat(255), op: fc.nat(8) }), { minLength: 1, maxLength: 48 })
  .map((genes) => {
    const n = genes.length;
    const prog = genes.map((g, i): Insn => {
      const room = n - i - 1; // instructions after this one
      if (i === n - 1) return g.kind % 3 ? stmt(BPF_RET | BPF_A, 0) : stmt(RET_K, g.a);
      switch (g.kind) {
        case 0: return stmt(LD_ABS, 4 * (g.a % 16));
        case 1:
        case 2: return stmt(g.b % 2 ? BPF_LD | BPF_IMM : BPF_LDX | BPF_IMM, g.a);
        case 3: return stmt([BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM][g.b % 4]!, g.a % 16);
        case 4:
        case 5:
        case 6: {
          const op = ALU_OPS[g.op]!;
          let k = g.a;
          if (op === BPF_DIV && k === 0) k = 1;
          if (op === BPF_LSH || op === BPF_RSH) k %= 32;
          return stmt(BPF_ALU | op | BPF_K, k);
        }
        case 7:
        case 8:
        case 9: return stmt(BPF_ALU | ALU_OPS[g.op]! | BPF_X, 0);
        case 10: return stmt(BPF_ALU | BPF_NEG, 0);
        case 11: return stmt(BPF_MISC | (g.b % 2 ? BPF_TAX : BPF_TXA), 0);
        case 12: return stmt(BPF_JMP | BPF_JA, g.a % room);
        case 13: return stmt(g.b % 2 ? BPF_LD | BPF_W | BPF_LEN : BPF_LDX | BPF_W | BPF_LEN, 0);
        case 14: return g.b % 2 ? stmt(BPF_RET | BPF_A, 0) : stmt(RET_K, g.a);
        default: {
          const span = Math.min(256, room);
          const src = g.kind === 15 ? BPF_X : BPF_K;
          return jump(BPF_JMP | JMP_OPS[g.op % 4]! | src, src === BPF_X ? 0 : g.a, g.b % span, g.c % span);
        }
      }
    });
    for (const pc of uninitializedScratchReads(prog)) {
      prog[pc] = stmt(prog[pc]!.code === (BPF_LD | BPF_MEM) ? BPF_LD | BPF_IMM : BPF_LDX | BPF_IMM, prog[pc]!.k);
    }
    return prog;
  });

const seccompData: fc.Arbitrary<SeccompData> = fc.record({
  nr: fc.oneof(fc.integer({ min: -1, max: 450 }), fc.integer({ min: -0x80000000, max: 0x7fffffff })),
  arch: fc.oneof(fc.constantFrom(AUDIT_ARCH_X86_64, AUDIT_ARCH_I386, AUDIT_ARCH_AARCH64), u32),
  instructionPointer: fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }),
  args: fc.array(fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), { minLength: 6, maxLength: 6 }),
});

test("property: emulator agrees with a naive BigInt reference on random valid programs", () => {
  fc.assert(
    fc.property(validProgram, fc.array(seccompData, { minLength: 1, maxLength: 4 }), (prog, inputs) => {
      assert.deepEqual(validateProgram(prog), []);
      const f = compileFilter(prog);
      for (const d of inputs) {
        const got = f(d, { recordPath: true });
        const want = reference(prog, d);
        assert.equal(got.ret, want.ret);
        assert.equal(got.executed, want.executed);
        assert.equal(got.path!.length, got.executed);
        assert.ok(got.executed <= prog.length);
        assert.ok(got.path!.every((pc, i) => i === 0 || pc > got.path![i - 1]!), "pc only moves forward");
      }
    }),
    { seed: 20240601, numRuns: 3000 },
  );
});

test("compiled filters are fast enough for 100k-run property tests", () => {
  const f = compileFilter(dispatch);
  const d = [data(0), data(1), data(2), data(3), data(0, { arch: AUDIT_ARCH_I386 })];
  const start = process.hrtime.bigint();
  let allowed = 0;
  for (let i = 0; i < 100_000; i++) if (f(d[i % 5]!).ret === SECCOMP_RET_ALLOW) allowed++;
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  assert.equal(allowed, 20_000);
  assert.ok(ms < 5000, `100k runs took ${ms.toFixed(0)} ms`);
});
