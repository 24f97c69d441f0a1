import { test } from "node:test";
import assert from "node:assert/strict";

import {
  BPF_ABS,
  BPF_ALU,
  BPF_B,
  BPF_DIV,
  BPF_H,
  BPF_IMM,
  BPF_IND,
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
  BPF_MAXINSNS,
  BPF_MEM,
  BPF_MISC,
  BPF_MOD,
  BPF_MSH,
  BPF_RET,
  BPF_RSH,
  BPF_ST,
  BPF_STX,
  BPF_TAX,
  BPF_W,
  BPF_A,
  BPF_X,
  jump,
  stmt,
  type Insn,
} from "./insn.js";
import { SECCOMP_RET_ALLOW } from "../seccomp/index.js";
import {
  InvalidProgramError,
  assertValidProgram,
  checkInsnOperands,
  isSeccompOpcode,
  uninitializedScratchReads,
  validateProgram,
} from "./validate.js";

const RET_ALLOW = stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
const RET_A = stmt(BPF_RET | BPF_A, 0);

/** One instruction followed by a RET: the smallest program to test an opcode in. */
function withRet(ins: Insn): Insn[] {
  return [ins, RET_ALLOW];
}

function assertOneError(prog: Insn[], pattern: RegExp): void {
  const errs = validateProgram(prog);
  assert.equal(errs.length, 1, `expected exactly one error, got ${JSON.stringify(errs)}`);
  assert.match(errs[0]!, pattern);
}

test("a minimal valid program has no errors", () => {
  assert.deepEqual(validateProgram([RET_ALLOW]), []);
  assert.deepEqual(validateProgram([RET_A]), []);
});

test("length: empty and over BPF_MAXINSNS are rejected, exactly 4096 is fine", () => {
  assertOneError([], /program is empty/);
  const max = Array.from({ length: BPF_MAXINSNS }, () => RET_ALLOW);
  assert.deepEqual(validateProgram(max), []);
  assertOneError([...max, RET_ALLOW], /4097 instructions; the kernel accepts at most 4096/);
});

test("field widths are checked", () => {
  assertOneError(withRet({ code: 0x10000, jt: 0, jf: 0, k: 0 }), /^insn 0: code 65536 is not a 16-bit/);
  assertOneError(withRet({ code: BPF_LD | BPF_IMM, jt: 256, jf: 0, k: 0 }), /^insn 0: jt 256 is not an 8-bit/);
  assertOneError(withRet({ code: BPF_LD | BPF_IMM, jt: 0, jf: -1, k: 0 }), /^insn 0: jf -1 is not an 8-bit/);
  assertOneError(withRet({ code: BPF_LD | BPF_IMM, jt: 0, jf: 0, k: -1 }), /^insn 0: k -1 is not a 32-bit/);
  assertOneError(withRet({ code: BPF_LD | BPF_IMM, jt: 0, jf: 0, k: 2 ** 32 }), /k 4294967296 is not a 32-bit/);
  assertOneError(withRet({ code: BPF_LD | BPF_IMM, jt: 0, jf: 0, k: 1.5 }), /k 1.5 is not a 32-bit/);
});

test("unknown opcodes and classic-only opcodes are rejected", () => {
  assertOneError(withRet(stmt(0xff, 0)), /^insn 0: unknown opcode 0xff$/);
  assertOneError(withRet(stmt(BPF_RET | BPF_X, 0)), /unknown opcode 0x0e/);
  const classicOnly: [number, string][] = [
    [BPF_LD | BPF_H | BPF_ABS, "ldh [k]"],
    [BPF_LD | BPF_B | BPF_ABS, "ldb [k]"],
    [BPF_LD | BPF_W | BPF_IND, "ld [x+k]"],
    [BPF_LD | BPF_H | BPF_IND, "ldh [x+k]"],
    [BPF_LD | BPF_B | BPF_IND, "ldb [x+k]"],
    [BPF_LDX | BPF_B | BPF_MSH, "ldxb 4*([k]&0xf)"],
    [BPF_ALU | BPF_MOD | BPF_K, "mod #k"],
    [BPF_ALU | BPF_MOD | BPF_X, "mod x"],
  ];
  for (const [code, shape] of classicOnly) {
    const errs = validateProgram(withRet(stmt(code, 4)));
    assert.equal(errs.length, 1, `${shape}: ${JSON.stringify(errs)}`);
    assert.ok(errs[0]!.includes(`(${shape}) is classic BPF but seccomp does not allow it`), errs[0]);
    assert.equal(isSeccompOpcode(code), false);
  }
});

test("every seccomp opcode is accepted with sensible operands", () => {
  let accepted = 0;
  for (let code = 0; code < 0x100; code++) {
    if (!isSeccompOpcode(code)) continue;
    const k = code === (BPF_LD | BPF_W | BPF_ABS) ? 4 : (code & 0x07) === BPF_JMP && code !== (BPF_JMP | BPF_JA) ? 7 : 1;
    const prog: Insn[] = [stmt(BPF_ST, 1), stmt(BPF_STX, 1), { code, jt: 0, jf: 0, k: code === (BPF_JMP | BPF_JA) ? 0 : k }, RET_ALLOW];
    assert.deepEqual(validateProgram(prog), [], `opcode 0x${code.toString(16)}`);
    accepted++;
  }
  // 41 opcodes: the explicit list in kernel/seccomp.c seccomp_check_filter (incl. LD/LDX W LEN).
  assert.equal(accepted, 41);
});

test("LD W ABS: offset must be 4-byte aligned and inside seccomp_data", () => {
  for (let k = 0; k < 64; k += 4) assert.deepEqual(validateProgram(withRet(stmt(BPF_LD | BPF_W | BPF_ABS, k))), []);
  assertOneError(withRet(stmt(BPF_LD | BPF_W | BPF_ABS, 64)), /^insn 0: load offset 64 is outside struct seccomp_data \(64 bytes\)$/);
  assertOneError(withRet(stmt(BPF_LD | BPF_W | BPF_ABS, 6)), /^insn 0: load offset 6 is not 4-byte aligned$/);
  assertOneError(withRet(stmt(BPF_LD | BPF_W | BPF_ABS, 0xfffff000)), /outside struct seccomp_data/); // SKF_AD_OFF
});

test("LD/LDX W LEN are allowed (seccomp rewrites them to load 64)", () => {
  assert.deepEqual(validateProgram(withRet(stmt(BPF_LD | BPF_W | BPF_LEN, 0))), []);
  assert.deepEqual(validateProgram(withRet(stmt(BPF_LDX | BPF_W | BPF_LEN, 0))), []);
});

test("division by constant zero is rejected; by X is not", () => {
  assertOneError(withRet(stmt(BPF_ALU | BPF_DIV | BPF_K, 0)), /^insn 0: division by constant zero$/);
  assert.deepEqual(validateProgram(withRet(stmt(BPF_ALU | BPF_DIV | BPF_K, 1))), []);
  assert.deepEqual(validateProgram(withRet(stmt(BPF_ALU | BPF_DIV | BPF_X, 0))), []);
});

test("constant shifts must be below 32", () => {
  for (const op of [BPF_LSH, BPF_RSH]) {
    assert.deepEqual(validateProgram(withRet(stmt(BPF_ALU | op | BPF_K, 31))), []);
    assertOneError(withRet(stmt(BPF_ALU | op | BPF_K, 32)), /^insn 0: shift by constant 32/);
    assert.deepEqual(validateProgram(withRet(stmt(BPF_ALU | op | BPF_X, 0))), []);
  }
});

test("scratch slots must be below 16", () => {
  for (const code of [BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM]) {
    assertOneError(withRet(stmt(code, 16)), /^insn 0: scratch slot M\[16\] does not exist \(slots are M\[0\]\.\.M\[15\]\)$/);
  }
});

test("jump targets must be inside the program", () => {
  assert.deepEqual(validateProgram([stmt(BPF_JMP | BPF_JA, 0), RET_ALLOW]), []);
  assertOneError([stmt(BPF_JMP | BPF_JA, 1), RET_ALLOW], /^insn 0: jump target 2 is past the end of the program \(length 2\)$/);
  // The example from the brief: a huge ja from insn 12 of a 200-instruction program.
  const prog: Insn[] = Array.from({ length: 200 }, () => RET_ALLOW);
  prog[12] = stmt(BPF_JMP | BPF_JA, 4087);
  assert.deepEqual(validateProgram(prog), ["insn 12: jump target 4100 is past the end of the program (length 200)"]);
  // ja with k near 2^32 must not wrap around.
  assertOneError([stmt(BPF_JMP | BPF_JA, 0xffffffff), RET_ALLOW], /jump target 4294967296 is past the end/);

  for (const op of [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET]) {
    for (const src of [BPF_K, BPF_X]) {
      const code = BPF_JMP | op | src;
      assert.deepEqual(validateProgram([jump(code, 0, 1, 0), RET_ALLOW, RET_ALLOW]), []);
      assertOneError([jump(code, 0, 2, 0), RET_ALLOW, RET_ALLOW], /^insn 0: jump target 3 \(jt\) is past the end of the program \(length 3\)$/);
      assertOneError([jump(code, 0, 0, 2), RET_ALLOW, RET_ALLOW], /^insn 0: jump target 3 \(jf\) is past the end/);
    }
  }
});

test("the last instruction must be a RET", () => {
  assertOneError([stmt(BPF_LD | BPF_IMM, 1)], /^insn 0: the last instruction must be a RET, found opcode 0x00 \(ld #k\)$/);
  assertOneError([RET_ALLOW, stmt(BPF_MISC | BPF_TAX, 0)], /^insn 1: the last instruction must be a RET/);
  // A conditional jump at the end is both out of range and not a RET.
  const errs = validateProgram([RET_ALLOW, jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 0)]);
  assert.equal(errs.length, 3);
});

test("reading a scratch slot that may not have been written is rejected (check_load_and_stores)", () => {
  // Straight line: read before any write.
  assertOneError([stmt(BPF_LD | BPF_MEM, 3), RET_A], /^insn 0: reads M\[3\] into A, but M\[3\] is not written on every path/);
  assertOneError([stmt(BPF_LDX | BPF_MEM, 15), RET_A], /^insn 0: reads M\[15\] into X/);
  // Write then read: fine. Writing another slot does not help.
  assert.deepEqual(validateProgram([stmt(BPF_ST, 3), stmt(BPF_LD | BPF_MEM, 3), RET_A]), []);
  assertOneError([stmt(BPF_STX, 2), stmt(BPF_LD | BPF_MEM, 3), RET_A], /insn 1: reads M\[3\]/);

  // Written on only one branch of a conditional.
  const oneBranch: Insn[] = [
    jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 1), // 0: true -> 1, false -> 2
    stmt(BPF_ST, 0), //                          1
    stmt(BPF_LD | BPF_MEM, 0), //                2: reached from 0 (false) without the store
    RET_A,
  ];
  assertOneError(oneBranch, /^insn 2: reads M\[0\]/);
  assert.deepEqual(uninitializedScratchReads(oneBranch), [2]);

  // Written on both branches: fine.
  const bothBranches: Insn[] = [
    jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 0, 2), // 0: true -> 1, false -> 3
    stmt(BPF_ST, 0), //                          1
    stmt(BPF_JMP | BPF_JA, 1), //                2: -> 4
    stmt(BPF_STX, 0), //                         3
    stmt(BPF_LD | BPF_MEM, 0), //                4
    RET_A,
  ];
  assert.deepEqual(validateProgram(bothBranches), []);

  // A ja that skips the store.
  assertOneError(
    [stmt(BPF_JMP | BPF_JA, 1), stmt(BPF_ST, 5), stmt(BPF_LD | BPF_MEM, 5), RET_A],
    /^insn 2: reads M\[5\]/,
  );

  // Like the kernel: the state after a RET flows on to the next instruction, so a read in
  // unreachable code right after a store-then-RET is accepted.
  assert.deepEqual(validateProgram([stmt(BPF_ST, 0), RET_A, stmt(BPF_LD | BPF_MEM, 0), RET_A]), []);
});

test("all problems are reported, each naming its instruction", () => {
  const errs = validateProgram([
    stmt(BPF_LD | BPF_W | BPF_ABS, 7),
    stmt(BPF_ALU | BPF_DIV | BPF_K, 0),
    stmt(BPF_LD | BPF_MEM, 1),
    stmt(BPF_JMP | BPF_JA, 9),
    stmt(BPF_LD | BPF_IMM, 0),
  ]);
  assert.deepEqual(
    errs.map((e) => e.split(":")[0]),
    ["insn 0", "insn 1", "insn 3", "insn 4", "insn 2"],
  );
});

test("checkInsnOperands has no index prefix; assertValidProgram throws InvalidProgramError", () => {
  assert.deepEqual(checkInsnOperands(stmt(BPF_ALU | BPF_DIV | BPF_K, 0)), ["division by constant zero"]);
  assert.doesNotThrow(() => assertValidProgram([RET_ALLOW]));
  assert.throws(
    () => assertValidProgram([stmt(BPF_LD | BPF_W | BPF_ABS, 2)]),
    (e: unknown) =>
      e instanceof InvalidProgramError &&
      e.errors.length === 2 &&
      /invalid seccomp BPF program \(2 problems\)/.test(e.message) &&
      e.message.includes("insn 0: load offset 2 is not 4-byte aligned"),
  );
});
