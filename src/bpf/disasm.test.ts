import { test } from "node:test";
import assert from "node:assert/strict";

import {
  BPF_ABS,
  BPF_ADD,
  BPF_ALU,
  BPF_AND,
  BPF_B,
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
  BPF_MEM,
  BPF_MISC,
  BPF_MOD,
  BPF_NEG,
  BPF_RET,
  BPF_ST,
  BPF_STX,
  BPF_TAX,
  BPF_TXA,
  BPF_W,
  BPF_A,
  BPF_X,
  jump,
  stmt,
  type Insn,
} from "./insn.js";
import {
  argOffset, AUDIT_ARCH_I386, AUDIT_ARCH_X86_64, dataFieldName, formatSeccompRet, SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG, SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF, X32_SYSCALL_BIT,
} from "../seccomp/index.js";
import { disassemble, formatInsn, formatTarget } from "./disasm.js";

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;
const RET_K = BPF_RET | BPF_K;

// A typical compiled shape: arch check, x32 guard, nr dispatch, one argument check.
const sample: Insn[] = [
  stmt(LD_ABS, 4), //                                            0
  jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 9), //   1 -> 2 / 11
  stmt(LD_ABS, 0), //                                            2
  jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 8, 0), //     3 -> 12 / 4
  jump(BPF_JMP | BPF_JEQ | BPF_K, 257, 2, 0), //                 4 -> 7 / 5
  jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 4, 0), //                   5 -> 10 / 6
  stmt(BPF_JMP | BPF_JA, 5), //                                  6 -> 12
  stmt(LD_ABS, argOffset(2, "lo")), //                           7
  jump(BPF_JMP | BPF_JSET | BPF_K, 3, 0, 1), //                  8 -> 9 / 10
  stmt(RET_K, SECCOMP_RET_ERRNO | 13), //                        9
  stmt(RET_K, SECCOMP_RET_ALLOW), //                             10
  stmt(RET_K, SECCOMP_RET_KILL_PROCESS), //                      11
  stmt(RET_K, SECCOMP_RET_ERRNO | 38), //                        12
];

test("golden: disassembly of a small program", () => {
  const expected = [
    "; seccomp BPF program: 13 instructions",
    "0000: ld  [arch]",
    "0001: jeq #0xc000003e, L0002, L0011         ; x86_64",
    "0002: ld  [nr]",
    "0003: jge #0x40000000, L0012, L0004         ; x32 syscall bit",
    "0004: jeq #257, L0007, L0005                ; openat",
    "0005: jeq #0, L0010, L0006                  ; read",
    "0006: ja  L0012",
    "0007: ld  [args[2].lo]",
    "0008: jset #0x3, L0009, L0010",
    "0009: ret ERRNO(13)",
    "0010: ret ALLOW",
    "0011: ret KILL_PROCESS",
    "0012: ret ERRNO(38)",
    "",
  ].join("\n");
  const names: Record<number, string> = { 0: "read", 257: "openat", 3: "close" };
  assert.equal(disassemble(sample, { syscallName: (nr) => names[nr] }), expected);
});

test("golden: raw columns", () => {
  const expected = [
    "; seccomp BPF program: 13 instructions",
    "; pc  code    jt  jf k           instruction",
    "0000: 0x20     0   0 0x00000004  ld  [arch]",
    "0001: 0x15     0   9 0xc000003e  jeq #0xc000003e, L0002, L0011         ; x86_64",
    "0002: 0x20     0   0 0x00000000  ld  [nr]",
    "0003: 0x35     8   0 0x40000000  jge #0x40000000, L0012, L0004         ; x32 syscall bit",
    "0004: 0x15     2   0 0x00000101  jeq #257, L0007, L0005",
    "0005: 0x15     4   0 0x00000000  jeq #0, L0010, L0006",
    "0006: 0x05     0   0 0x00000005  ja  L0012",
    "0007: 0x20     0   0 0x00000020  ld  [args[2].lo]",
    "0008: 0x45     0   1 0x00000003  jset #0x3, L0009, L0010",
    "0009: 0x06     0   0 0x0005000d  ret ERRNO(13)",
    "0010: 0x06     0   0 0x7fff0000  ret ALLOW",
    "0011: 0x06     0   0 0x80000000  ret KILL_PROCESS",
    "0012: 0x06     0   0 0x00050026  ret ERRNO(38)",
    "",
  ].join("\n");
  assert.equal(disassemble(sample, { raw: true }), expected);
  assert.equal(disassemble(sample, { raw: true, header: false }), expected.split("\n").slice(2).join("\n"));
});

test("every seccomp instruction has a mnemonic form", () => {
  const cases: [Insn, string][] = [
    [stmt(LD_ABS, 0), "ld  [nr]"],
    [stmt(LD_ABS, 4), "ld  [arch]"],
    [stmt(LD_ABS, 8), "ld  [ip.lo]"],
    [stmt(LD_ABS, 12), "ld  [ip.hi]"],
    [stmt(LD_ABS, argOffset(1, "lo")), "ld  [args[1].lo]"],
    [stmt(LD_ABS, argOffset(1, "hi")), "ld  [args[1].hi]"],
    [stmt(LD_ABS, argOffset(5, "hi")), "ld  [args[5].hi]"],
    [stmt(BPF_LD | BPF_W | BPF_LEN, 0), "ld  #len"],
    [stmt(BPF_LDX | BPF_W | BPF_LEN, 0), "ldx #len"],
    [stmt(BPF_LD | BPF_IMM, 5), "ldi #5"],
    [stmt(BPF_LD | BPF_IMM, 0xdeadbeef), "ldi #0xdeadbeef"],
    [stmt(BPF_LDX | BPF_IMM, 65535), "ldxi #65535"],
    [stmt(BPF_LDX | BPF_IMM, 65536), "ldxi #0x10000"],
    [stmt(BPF_LD | BPF_MEM, 3), "ld  M[3]"],
    [stmt(BPF_LDX | BPF_MEM, 3), "ldx M[3]"],
    [stmt(BPF_ST, 15), "st  M[15]"],
    [stmt(BPF_STX, 0), "stx M[0]"],
    [stmt(BPF_ALU | BPF_ADD | BPF_K, 1), "add #1"],
    [stmt(BPF_ALU | BPF_ADD | BPF_X, 0), "add x"],
    [stmt(BPF_ALU | BPF_AND | BPF_K, 0xff), "and #0xff"],
    [stmt(BPF_ALU | BPF_DIV | BPF_K, 10), "div #10"],
    [stmt(BPF_ALU | BPF_NEG, 0), "neg"],
    [stmt(BPF_MISC | BPF_TAX, 0), "tax"],
    [stmt(BPF_MISC | BPF_TXA, 0), "txa"],
    [stmt(BPF_JMP | BPF_JA, 9), "ja  L0010"],
    [jump(BPF_JMP | BPF_JEQ | BPF_X, 0, 0, 3), "jeq x, L0001, L0004"],
    [jump(BPF_JMP | BPF_JGT | BPF_K, 7, 255, 0), "jgt #7, L0256, L0001"],
    [stmt(RET_K, SECCOMP_RET_ALLOW), "ret ALLOW"],
    [stmt(RET_K, SECCOMP_RET_LOG), "ret LOG"],
    [stmt(RET_K, SECCOMP_RET_ERRNO | 13), "ret ERRNO(13)"],
    [stmt(RET_K, SECCOMP_RET_KILL_PROCESS), "ret KILL_PROCESS"],
    [stmt(RET_K, SECCOMP_RET_KILL_THREAD), "ret KILL_THREAD"],
    [stmt(RET_K, SECCOMP_RET_USER_NOTIF), "ret USER_NOTIF"],
    [stmt(RET_K, SECCOMP_RET_TRAP | 1), "ret TRAP(1)"],
    [stmt(RET_K, SECCOMP_RET_TRACE | 7), "ret TRACE(7)"],
    [stmt(RET_K, SECCOMP_RET_LOG | 2), "ret LOG(2)"],
    [stmt(RET_K, 0x12340000), "ret #0x12340000"],
    [stmt(BPF_RET | BPF_A, 0), "ret A"],
  ];
  for (const [ins, text] of cases) assert.equal(formatInsn(ins, 0), text);
});

test("instructions without an exact mnemonic become .insn with a reason", () => {
  const text = disassemble(
    [
      stmt(BPF_LD | BPF_B | BPF_ABS, 12), //          classic only
      stmt(BPF_ALU | BPF_MOD | BPF_K, 3), //          classic only
      stmt(0xffff, 1), //                              unknown
      stmt(LD_ABS, 6), //                              misaligned
      stmt(BPF_ST, 16), //                             bad slot
      stmt(BPF_ALU | BPF_DIV | BPF_K, 0), //          div by 0
      { code: BPF_MISC | BPF_TAX, jt: 1, jf: 0, k: 5 }, // unused fields set
      { code: BPF_JMP | BPF_JEQ | BPF_X, jt: 0, jf: 0, k: 9 }, // k unused by X form
      { code: BPF_RET | BPF_A, jt: 0, jf: 0, k: 1 },
    ],
    { header: false },
  );
  assert.deepEqual(text.trimEnd().split("\n"), [
    "0000: .insn 0x30, 0, 0, 0x0000000c          ; opcode 0x30 (ldb [k]) is classic BPF but seccomp does not allow it",
    "0001: .insn 0x94, 0, 0, 0x00000003          ; opcode 0x94 (mod #k) is classic BPF but seccomp does not allow it",
    "0002: .insn 0xffff, 0, 0, 0x00000001        ; unknown opcode 0xffff",
    "0003: .insn 0x20, 0, 0, 0x00000006          ; load offset 6 is not 4-byte aligned",
    "0004: .insn 0x02, 0, 0, 0x00000010          ; scratch slot M[16] does not exist (slots are M[0]..M[15])",
    "0005: .insn 0x34, 0, 0, 0x00000000          ; division by constant zero",
    "0006: .insn 0x07, 1, 0, 0x00000005          ; opcode 0x07 (tax) with nonzero fields it does not use (the kernel ignores them)",
    "0007: .insn 0x1d, 0, 0, 0x00000009          ; opcode 0x1d (jeq x) with nonzero fields it does not use (the kernel ignores them)",
    "0008: .insn 0x16, 0, 0, 0x00000001          ; opcode 0x16 (ret a) with nonzero fields it does not use (the kernel ignores them)",
  ]);
});

test("architecture comments only where A holds [arch] (or might)", () => {
  const prog: Insn[] = [
    stmt(LD_ABS, 0), //                                         A = nr
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 0), //  not an arch compare: no comment
    stmt(LD_ABS, argOffset(0, "lo")),
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 0), // an argument: no comment
    stmt(LD_ABS, 4),
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_I386, 0, 0), //  arch: comment
    stmt(BPF_ST, 0),
    stmt(BPF_LD | BPF_MEM, 0), //                               unknown: comment
    jump(BPF_JMP | BPF_JEQ | BPF_K, 0xc00000b7, 0, 0),
    stmt(RET_K, SECCOMP_RET_ALLOW),
  ];
  const lines = disassemble(prog, { header: false }).split("\n");
  assert.equal(lines[1], "0001: jeq #0x40000003, L0002, L0002");
  assert.equal(lines[3], "0003: jeq #0xc000003e, L0004, L0004");
  assert.match(lines[5]!, /; i386$/);
  assert.match(lines[8]!, /; aarch64$/);
});

test("the accumulator source merges at join points", () => {
  // Both paths through 0 reach 3 with A = nr: the load at 2 is on both.
  const prog: Insn[] = [
    jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 1), //     0 -> 1 / 2
    stmt(LD_ABS, 4), //                               1: A = arch, then falls into 2
    stmt(LD_ABS, 0), //                               2: A = nr
    jump(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 0), //      3
    stmt(RET_K, SECCOMP_RET_ALLOW),
  ];
  const text = disassemble(prog, { header: false, syscallName: (nr) => (nr === 3 ? "close" : undefined) });
  assert.match(text.split("\n")[3]!, /; close$/);
  const split: Insn[] = [
    jump(BPF_JMP | BPF_JSET | BPF_K, 1, 0, 2), //     0 -> 1 / 3
    stmt(LD_ABS, 4), //                               1: A = arch
    stmt(BPF_JMP | BPF_JA, 1), //                     2 -> 4
    stmt(LD_ABS, 0), //                               3: A = nr
    jump(BPF_JMP | BPF_JEQ | BPF_K, 3, 0, 0), //      4: A is arch or nr
    stmt(RET_K, SECCOMP_RET_ALLOW),
  ];
  const t2 = disassemble(split, { header: false, syscallName: (nr) => (nr === 3 ? "close" : undefined) });
  assert.equal(t2.split("\n")[4], "0004: jeq #3, L0005, L0005");
});

test("helpers: formatSeccompRet, dataFieldName, formatTarget", () => {
  assert.equal(formatSeccompRet(SECCOMP_RET_ERRNO | 1), "ERRNO(1)");
  assert.equal(formatSeccompRet(SECCOMP_RET_KILL_THREAD | 9), "KILL_THREAD(9)");
  assert.equal(formatSeccompRet(0x7ffe0000), undefined);
  assert.equal(dataFieldName(16), "args[0].lo");
  assert.equal(dataFieldName(60), "args[5].hi");
  assert.equal(dataFieldName(64), undefined);
  assert.equal(dataFieldName(2), undefined);
  assert.equal(formatTarget(7), "L0007");
  assert.equal(formatTarget(12345), "L12345");
});

test("empty program and jump targets past the end still print", () => {
  assert.equal(disassemble([]), "; seccomp BPF program: 0 instructions\n");
  assert.equal(disassemble([stmt(BPF_JMP | BPF_JA, 0xffffffff)], { header: false }), "0000: ja  L4294967296\n");
  assert.equal(
    disassemble([jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 200, 0)], { header: false }),
    "0000: jeq #1, L0201, L0001\n",
  );
});
