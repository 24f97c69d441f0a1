// The per-architecture register layer of running a system call in another process (syscall-regs.ts):
// offsets checked against the kernel's struct layouts, on buffers, without a tracee.

import assert from "node:assert/strict";
import { test } from "node:test";
import { AARCH64_REGISTERS, findSyscallInstruction, imageBase, isSyscallInstruction, stackPointer, syscallRegisterLayout, syscallRegisters, syscallResult, X86_64_REGISTERS } from "./syscall-regs.js";

/** A register buffer whose 8-byte word i holds 0x1000 + i, so a moved or clobbered word shows. */
function numbered(size: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i < size / 8; i++) b.writeBigUInt64LE(0x1000n + BigInt(i), i * 8);
  return b;
}
const word = (b: Buffer, i: number) => b.readBigUInt64LE(i * 8);

test("aarch64: struct user_pt_regs is regs[31], sp, pc, pstate; the call is x8 with x0..x5, the result in x0", () => {
  assert.equal(syscallRegisterLayout("aarch64"), AARCH64_REGISTERS);
  assert.equal(AARCH64_REGISTERS.size, 272);
  const saved = numbered(272);
  const r = syscallRegisters(AARCH64_REGISTERS, saved, 277, [1n, 2n, 0xdead0n], 0xffff0000n);
  assert.equal(word(r, 8), 277n, "x8: the number");
  assert.deepEqual([0, 1, 2, 3, 4, 5].map((i) => word(r, i)), [1n, 2n, 0xdead0n, 0n, 0n, 0n], "x0..x5: the arguments, unset ones 0");
  assert.equal(word(r, 32), 0xffff0000n, "pc");
  assert.equal(word(r, 31), 0x1000n + 31n, "sp untouched");
  assert.equal(word(r, 33), 0x1000n + 33n, "pstate untouched");
  for (const i of [6, 7, 9, 18, 29, 30]) assert.equal(word(r, i), 0x1000n + BigInt(i), `x${i} untouched`);
  assert.equal(word(saved, 8), 0x1000n + 8n, "the saved copy is not changed");
  assert.equal(AARCH64_REGISTERS.inProgressNr, undefined, "aarch64's in-progress number is a regset of its own (NT_ARM_SYSTEM_CALL)");
  r.writeBigUInt64LE(BigInt.asUintN(64, -22n), 0);
  assert.equal(syscallResult(AARCH64_REGISTERS, r), -22n, "x0 read as signed: -EINVAL");
  assert.equal(stackPointer(AARCH64_REGISTERS, saved), 0x1000n + 31n);
});

test("x86_64: user_regs_struct offsets; rax the number and the result, rdi rsi rdx r10 r8 r9, orig_rax -1", () => {
  assert.equal(syscallRegisterLayout("x86_64"), X86_64_REGISTERS);
  const saved = numbered(216);
  const r = syscallRegisters(X86_64_REGISTERS, saved, 157, [4n, 0n, 7n, 8n, 9n, 10n], 0x7fff1000n);
  // struct order: r15 r14 r13 r12 rbp rbx r11 r10 r9 r8 rax rcx rdx rsi rdi orig_rax rip cs eflags rsp ...
  assert.equal(word(r, 10), 157n, "rax");
  assert.deepEqual([14, 13, 12, 7, 9, 8].map((i) => word(r, i)), [4n, 0n, 7n, 8n, 9n, 10n], "rdi rsi rdx r10 r8 r9");
  assert.equal(word(r, 15), 0xffffffffffffffffn, "orig_rax: in no system call");
  assert.equal(word(r, 16), 0x7fff1000n, "rip");
  assert.equal(word(r, 19), 0x1000n + 19n, "rsp untouched");
  assert.equal(stackPointer(X86_64_REGISTERS, saved), 0x1000n + 19n);
  assert.equal(syscallResult(X86_64_REGISTERS, r), 157n);
});

test("a register buffer of the other architecture's size, or too many arguments, is refused", () => {
  assert.throws(() => syscallRegisters(AARCH64_REGISTERS, Buffer.alloc(216), 1, [], 0n), /aarch64 registers are 272 bytes, not 216/);
  assert.throws(() => syscallRegisters(X86_64_REGISTERS, Buffer.alloc(216), 1, [1n, 2n, 3n, 4n, 5n, 6n, 7n], 0n), /at most 6 arguments/);
});

test("the instruction: svc #0 at a 4-byte boundary on aarch64, syscall anywhere on x86_64", () => {
  assert.ok(isSyscallInstruction(AARCH64_REGISTERS, Buffer.from([0x01, 0x00, 0x00, 0xd4, 0xff, 0xff, 0xff, 0xff])));
  assert.ok(!isSyscallInstruction(AARCH64_REGISTERS, Buffer.from([0x0f, 0x05, 0, 0, 0, 0, 0, 0])));
  assert.ok(!isSyscallInstruction(AARCH64_REGISTERS, Buffer.from([0x21, 0x00, 0x00, 0xd4, 0, 0, 0, 0])), "svc #1 is not it");
  assert.ok(isSyscallInstruction(X86_64_REGISTERS, Buffer.from([0x0f, 0x05, 0x90, 0, 0, 0, 0, 0])));
  assert.ok(!isSyscallInstruction(X86_64_REGISTERS, Buffer.from([0x01, 0x00, 0x00, 0xd4, 0, 0, 0, 0])));
  // The bytes of svc #0 straddling two instructions (offset 2) are not an instruction; the one at 8 is.
  const code = Buffer.from([0x1f, 0x20, 0x01, 0x00, 0x00, 0xd4, 0x1f, 0x20, 0x01, 0x00, 0x00, 0xd4]);
  assert.equal(findSyscallInstruction(AARCH64_REGISTERS, code), 8);
  assert.equal(findSyscallInstruction(AARCH64_REGISTERS, code.subarray(0, 8)), -1);
  assert.equal(findSyscallInstruction(X86_64_REGISTERS, Buffer.from([0x90, 0x0f, 0x05])), 1);
});

test("the image goes 8 KiB below the stack pointer, 16-byte aligned, and ends below it", () => {
  for (const sp of [0x7ffffff0n, 0x7ffffff8n, 0x7fffffffn]) {
    for (const len of [0, 16, 8 * 171 + 16]) {
      const base = imageBase(sp, len);
      assert.equal(base % 16n, 0n);
      assert.ok(base + BigInt(len) <= sp - 8192n, `${sp} ${len}`);
    }
  }
});
