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
  AUDIT_ARCH_X86_64,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
  X32_SYSCALL_BIT,
  argOffset,
} from "../seccomp/index.js";
import { AsmError, assemble } from "./asm.js";
import { disassemble } from "./disasm.js";
import { uninitializedScratchReads, validateProgram } from "./validate.js";

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;
const RET_K = BPF_RET | BPF_K;

/** Asserts that assembling `text` throws an AsmError at line:column whose detail matches. */
function assertAsmError(text: string, line: number, column: number, detail: RegExp): void {
  assert.throws(
    () => assemble(text),
    (e: unknown) => {
      assert.ok(e instanceof AsmError, `expected AsmError, got ${String(e)}`);
      assert.equal(`${e.line}:${e.column}`, `${line}:${column}`, e.message);
      assert.match(e.detail, detail);
      assert.equal(e.message, `line ${line}, column ${column}: ${e.detail}`);
      return true;
    },
  );
}

test("hand-written program with labels", () => {
  const prog = assemble(`
; allow read/write, EPERM for openat with O_CREAT, kill the rest
        ld   [arch]
        jeq  #0xc000003e, check_nr, kill   ; x86_64 only
check_nr:
        ld   [nr]
        jge  #0x40000000, kill            ; x32: one target, false falls through
        jeq  #0, allow
        jeq  #1, allow
        jne  #257, kill                   ; jne = jeq with the targets swapped
        ld   [args[2].lo]
        jset #0x40, eperm, allow
eperm:  ret  ERRNO(1)
allow:  ret  ALLOW
kill:   ret  KILL_PROCESS
`);
  assert.deepEqual(prog, [
    stmt(LD_ABS, 4),
    jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 0, 9),
    stmt(LD_ABS, 0),
    jump(BPF_JMP | BPF_JGE | BPF_K, X32_SYSCALL_BIT, 7, 0),
    jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 5, 0),
    jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 4, 0),
    jump(BPF_JMP | BPF_JEQ | BPF_K, 257, 0, 4),
    stmt(LD_ABS, argOffset(2, "lo")),
    jump(BPF_JMP | BPF_JSET | BPF_K, 0x40, 0, 1),
    stmt(RET_K, SECCOMP_RET_ERRNO | 1),
    stmt(RET_K, SECCOMP_RET_ALLOW),
    stmt(RET_K, SECCOMP_RET_KILL_PROCESS),
  ]);
  assert.deepEqual(validateProgram(prog), []);
});

test("every instruction form", () => {
  const text = `
    ld [nr]
    ld [arch]
    ld [ip.lo]
    ld [ip.hi]
    ld [args[0].lo]
    LD [ARGS[5].HI]
    ld [ args [ 3 ] .hi ]
    ld [24]
    ld #len
    ld len
    ldx #len
    ld #7
    ld 0x10
    ldi #5
    ldi 5
    ldx #9
    ldxi #-1
    ld M[1]
    ldx m[2]
    st M[3]
    stx M[15]
    add #1
    sub x
    mul X
    div #3
    and #0xff
    or 256
    xor #0x0F
    lsh #31
    rsh x
    neg
    tax
    txa
    .insn 0x28, 0, 0, 12
    ret A
    ret a
    ret #5
    ret 0x7fff0000
  `;
  assert.deepEqual(assemble(text), [
    stmt(LD_ABS, 0),
    stmt(LD_ABS, 4),
    stmt(LD_ABS, 8),
    stmt(LD_ABS, 12),
    stmt(LD_ABS, 16),
    stmt(LD_ABS, 60),
    stmt(LD_ABS, 44),
    stmt(LD_ABS, 24),
    stmt(BPF_LD | BPF_W | BPF_LEN, 0),
    stmt(BPF_LD | BPF_W | BPF_LEN, 0),
    stmt(BPF_LDX | BPF_W | BPF_LEN, 0),
    stmt(BPF_LD | BPF_IMM, 7),
    stmt(BPF_LD | BPF_IMM, 16),
    stmt(BPF_LD | BPF_IMM, 5),
    stmt(BPF_LD | BPF_IMM, 5),
    stmt(BPF_LDX | BPF_IMM, 9),
    stmt(BPF_LDX | BPF_IMM, 0xffffffff),
    stmt(BPF_LD | BPF_MEM, 1),
    stmt(BPF_LDX | BPF_MEM, 2),
    stmt(BPF_ST, 3),
    stmt(BPF_STX, 15),
    stmt(BPF_ALU | BPF_ADD | BPF_K, 1),
    stmt(BPF_ALU | BPF_SUB | BPF_X, 0),
    stmt(BPF_ALU | BPF_MUL | BPF_X, 0),
    stmt(BPF_ALU | BPF_DIV | BPF_K, 3),
    stmt(BPF_ALU | BPF_AND | BPF_K, 0xff),
    stmt(BPF_ALU | BPF_OR | BPF_K, 256),
    stmt(BPF_ALU | BPF_XOR | BPF_K, 15),
    stmt(BPF_ALU | BPF_LSH | BPF_K, 31),
    stmt(BPF_ALU | BPF_RSH | BPF_X, 0),
    stmt(BPF_ALU | BPF_NEG, 0),
    stmt(BPF_MISC | BPF_TAX, 0),
    stmt(BPF_MISC | BPF_TXA, 0),
    stmt(0x28, 12),
    stmt(BPF_RET | BPF_A, 0),
    stmt(BPF_RET | BPF_A, 0),
    stmt(RET_K, 5),
    stmt(RET_K, SECCOMP_RET_ALLOW),
  ]);
});

test("named seccomp returns", () => {
  const cases: [string, number][] = [
    ["ALLOW", SECCOMP_RET_ALLOW],
    ["allow", SECCOMP_RET_ALLOW],
    ["LOG", SECCOMP_RET_LOG],
    ["ERRNO(13)", SECCOMP_RET_ERRNO | 13],
    ["ERRNO(0x26)", SECCOMP_RET_ERRNO | 38],
    ["ERRNO( 65535 )", SECCOMP_RET_ERRNO | 0xffff],
    ["KILL", SECCOMP_RET_KILL_THREAD],
    ["KILL_THREAD", SECCOMP_RET_KILL_THREAD],
    ["KILL_PROCESS", SECCOMP_RET_KILL_PROCESS],
    ["TRAP(1)", SECCOMP_RET_TRAP | 1],
    ["TRAP", SECCOMP_RET_TRAP],
    ["USER_NOTIF", SECCOMP_RET_USER_NOTIF],
    ["TRACE(7)", SECCOMP_RET_TRACE | 7],
    ["ALLOW(5)", SECCOMP_RET_ALLOW | 5],
  ];
  for (const [name, value] of cases) {
    assert.deepEqual(assemble(`ret ${name}`), [stmt(RET_K, value)], name);
  }
});

test("jump targets: labels, absolute L<index>, +offset; jne/jlt/jle; x operand", () => {
  const prog = assemble(`
    jeq #1, L0003, +0        ; 0
    jgt x, +1, there         ; 1
    jlt #5, there            ; 2  = jge #5, +0 (true falls through), there
there:
    jle x, L0005, L0006      ; 3  = jgt x, L0006, L0005
    ja  end                  ; 4
    jmp +0                   ; 5
end:
    ret ALLOW                ; 6
  `);
  assert.deepEqual(prog, [
    jump(BPF_JMP | BPF_JEQ | BPF_K, 1, 2, 0),
    jump(BPF_JMP | BPF_JGT | BPF_X, 0, 1, 1),
    jump(BPF_JMP | BPF_JGE | BPF_K, 5, 0, 0),
    jump(BPF_JMP | BPF_JGT | BPF_X, 0, 2, 1),
    stmt(BPF_JMP | BPF_JA, 1),
    stmt(BPF_JMP | BPF_JA, 0),
    stmt(RET_K, SECCOMP_RET_ALLOW),
  ]);
  // Several labels may name one instruction; labels may share a line with it.
  assert.deepEqual(assemble("ja b\na: b:\nc: ret LOG\n"), [stmt(BPF_JMP | BPF_JA, 0), stmt(RET_K, SECCOMP_RET_LOG)]);
});

test("disassembler lines: index prefixes and raw columns are checked", () => {
  const text = [
    "; seccomp BPF program: 3 instructions",
    "; pc  code    jt  jf k           instruction",
    "0000: 0x20     0   0 0x00000000  ld  [nr]",
    "0001: 0x15     0   1 0x00000002  jeq #2, L0002, L0003   ; open",
    "0002: 0x06     0   0 0x7fff0000  ret ALLOW",
    "0003: 6 0 0 0",
  ].join("\n");
  assert.deepEqual(assemble(text), [
    stmt(LD_ABS, 0),
    jump(BPF_JMP | BPF_JEQ | BPF_K, 2, 0, 1),
    stmt(RET_K, SECCOMP_RET_ALLOW),
    stmt(RET_K, 0),
  ]);
  assertAsmError("0000: ret ALLOW\n0002: ret LOG", 2, 1, /line number 0002 does not match this instruction's position 1/);
  assertAsmError("0000: 0x06 0 0 0x7fff0000  ret LOG", 1, 7, /raw fields \(code 0x6, jt 0, jf 0, k 0x7fff0000\) do not match the instruction, which assembles to \(code 0x6, jt 0, jf 0, k 0x7ffc0000\)/);
  assertAsmError("0000: 0x15 1 0 5  jeq #5, L0003, L0001\nret A\nret A\nret A", 1, 7, /raw fields .* jt 1, .* which assembles to .* jt 2,/);
  assertAsmError("0000:\n", 1, 6, /expected an instruction after the line number/);
});

test("errors carry line and column and say what was expected", () => {
  assertAsmError("ld [nr]\n  frob #1", 2, 3, /unknown instruction "frob"; expected one of: ld, ldi, .*\.insn/);
  assertAsmError("ja nowhere\nret A", 1, 4, /undefined label "nowhere"; expected a label, L<index>/);
  assertAsmError("x: ret A\nx: ret A", 2, 1, /label "x" is already defined on line 1/);
  assertAsmError("L5: ret A", 1, 1, /label name "L5" is reserved/);
  assertAsmError("ret A\njeq #1, L0000, L0002\nret A", 2, 9, /jump target L0 is not after this instruction \(insn 1\); classic BPF only jumps forward/);
  assertAsmError("back: ret A\nja back", 2, 4, /jump target "back" \(insn 0\) is not after this instruction/);
  assertAsmError("ld [foo]", 1, 5, /expected a seccomp_data field: nr, arch, ip.lo, ip.hi, args\[0-5\]\.lo/);
  assertAsmError("ld [ip]", 1, 5, /expected ip.lo or ip.hi/);
  assertAsmError("ld [args[6].lo]", 1, 10, /argument number \(0-5\) 6 is too large/);
  assertAsmError("ld [args[1]]", 1, 12, /expected .lo or .hi after args\[1\]/);
  assertAsmError("ld [6]", 1, 1, /load offset 6 is not 4-byte aligned/);
  assertAsmError("ld [64]", 1, 1, /load offset 64 is outside struct seccomp_data/);
  assertAsmError("ld [nr", 1, 7, /expected "\]", found end of line/);
  assertAsmError("st M[16]", 1, 6, /scratch slot number 16 is too large \(maximum 15\)/);
  assertAsmError("st [3]", 1, 4, /expected a scratch slot M\[0\]\.\.M\[15\]/);
  assertAsmError("ldx [nr]", 1, 5, /ldx cannot load from seccomp_data/);
  assertAsmError("ld mask", 1, 4, /expected \[field\], M\[n\], #len or #<number>, found "mask"/);
  assertAsmError("div #0", 1, 1, /division by constant zero/);
  assertAsmError("lsh #32", 1, 1, /shift by constant 32/);
  assertAsmError("ldi #0x100000000", 1, 5, /value #?0x100000000 does not fit in 32 bits/);
  assertAsmError("ldi -2147483649", 1, 5, /does not fit in 32 bits \(minimum -2147483648\)/);
  assertAsmError("add y", 1, 5, /expected #<number> or x, found "y"/);
  assertAsmError("ret ERRNO", 1, 10, /ERRNO needs an errno value: ERRNO\(n\)/);
  assertAsmError("ret ERRNO(70000)", 1, 11, /ERRNO data \(0\.\.65535\) 70000 is too large/);
  assertAsmError("ret ERRNO(13", 1, 13, /expected "\)"/);
  assertAsmError("ret DENY", 1, 5, /unknown return value "DENY"; expected A, a number, or a seccomp action \(ALLOW, LOG, ERRNO\(n\)/);
  assertAsmError("ret A B", 1, 7, /unexpected "B" after the instruction/);
  assertAsmError("jeq #1 L1", 1, 8, /expected "," and a jump target/);
  assertAsmError("jeq #1, 5", 1, 9, /expected a jump target: a label, L<index> \(e\.g\. L0012\) or \+<offset>; found "5"/);
  assertAsmError("ldh [12]", 1, 1, /ldh is classic BPF that seccomp filters cannot use; write \.insn/);
  assertAsmError("mod #3", 1, 1, /mod is classic BPF/);
  assertAsmError(".insn 0x10000, 0, 0, 0", 1, 7, /code \(16 bits\) 0x10000 is too large/);
  assertAsmError(".insn 6, 256, 0, 0", 1, 10, /jt \(8 bits\) 256 is too large/);
  assertAsmError("  ; just a comment\n\n  @", 3, 3, /expected an instruction .*, found "@"/);
});

test("jump too far", () => {
  const filler = Array.from({ length: 256 }, () => "ret A").join("\n");
  // 256 instructions between the jump and its target: offset 256 does not fit in jt.
  assertAsmError(`jeq #1, far, +0\n${filler}\nfar: ret ALLOW`, 1, 9, /jump too far: target "far" \(insn 257\) is 256 instructions past the next one, but jt holds at most 255/);
  assertAsmError(`jeq #1, +0, L0257\n${filler}\nret ALLOW`, 1, 13, /jump too far: .* but jf holds at most 255/);
  assertAsmError("jeq #1, +256", 1, 9, /jump too far: offset \+256 does not fit in jt \(maximum 255\)/);
  // 255 is fine, and ja reaches any distance.
  const ok = assemble(`jeq #1, far, +0\n${filler.split("\n").slice(1).join("\n")}\nfar: ret ALLOW`);
  assert.equal(ok[0]!.jt, 255);
  const longJa = assemble(`ja far\n${filler}\n${filler}\nfar: ret ALLOW`);
  assert.equal(longJa[0]!.k, 512);
});

test("CRLF line endings and tabs", () => {
  assert.deepEqual(assemble("\tld\t[nr]\r\n\tret\tA\r\n"), [stmt(LD_ABS, 0), stmt(BPF_RET | BPF_A, 0)]);
});

// ---------------------------------------------------------------------------------------
// Round trip: assemble(disassemble(P)) deep-equals P.

const u32 = fc.oneof(
  fc.constantFrom(0, 1, 31, 0x7fffffff, 0x80000000, 0xffffffff, 0xc000003e, 0x40000003, 0x7fff0000, 0x50000, 0x10000),
  fc.integer({ min: 0, max: 0xffffffff }),
);
const ALU_OPS = [BPF_ADD, BPF_SUB, BPF_MUL, BPF_DIV, BPF_OR, BPF_AND, BPF_LSH, BPF_RSH, BPF_XOR];
const JMP_OPS = [BPF_JEQ, BPF_JGT, BPF_JGE, BPF_JSET];
const RETS = [
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_LOG,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_USER_NOTIF,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_TRACE,
];

const gene = fc.record({
  kind: fc.nat(15),
  a: u32,
  b: fc.nat(255),
  c: fc.nat(255),
  op: fc.nat(8),
  junk: fc.oneof({ weight: 9, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.record({ jt: fc.nat(255), jf: fc.nat(255), k: u32 }) }),
});

/**
 * Random programs the kernel accepts, by construction, up to `maxLength` long. With
 * `junk`, some instructions get nonzero values in fields their opcode ignores (still valid).
 */
function validPrograms(maxLength: number): fc.Arbitrary<Insn[]> {
  return fc.array(gene, { minLength: 1, maxLength }).map((genes) => {
    const n = genes.length;
    const prog = genes.map((g, i): Insn => {
      const room = n - i - 1;
      let ins: Insn;
      if (i === n - 1 || g.kind === 10) {
        ins = g.b % 4 === 0 ? stmt(BPF_RET | BPF_A, 0) : stmt(RET_K, g.b % 3 ? (RETS[g.op % 8]! | (g.c % 3 ? 0 : g.a & 0xffff)) >>> 0 : g.a);
      } else {
        switch (g.kind) {
          case 0: ins = stmt(LD_ABS, 4 * (g.a % 16)); break;
          case 1: ins = stmt(g.b % 2 ? BPF_LD | BPF_IMM : BPF_LDX | BPF_IMM, g.a); break;
          case 2: ins = stmt([BPF_ST, BPF_STX, BPF_LD | BPF_MEM, BPF_LDX | BPF_MEM][g.b % 4]!, g.a % 16); break;
          case 3: {
            const op = ALU_OPS[g.op]!;
            let k = g.a;
            if (op === BPF_DIV && k === 0) k = 7;
            if (op === BPF_LSH || op === BPF_RSH) k %= 32;
            ins = stmt(BPF_ALU | op | BPF_K, k);
            break;
          }
          case 4: ins = stmt(BPF_ALU | ALU_OPS[g.op]! | BPF_X, 0); break;
          case 5: ins = stmt(BPF_ALU | BPF_NEG, 0); break;
          case 6: ins = stmt(BPF_MISC | (g.b % 2 ? BPF_TAX : BPF_TXA), 0); break;
          case 7: ins = stmt(BPF_JMP | BPF_JA, g.a % room); break;
          case 8: ins = stmt(g.b % 2 ? BPF_LD | BPF_W | BPF_LEN : BPF_LDX | BPF_W | BPF_LEN, 0); break;
          default: {
            const span = Math.min(256, room);
            const src = g.kind === 9 ? BPF_X : BPF_K;
            ins = jump(BPF_JMP | JMP_OPS[g.op % 4]! | src, src === BPF_X ? 0 : g.a, g.b % span, g.c % span);
          }
        }
      }
      if (g.junk !== undefined) ins = addJunk(ins, g.junk);
      return ins;
    });
    for (const pc of uninitializedScratchReads(prog)) {
      prog[pc] = stmt(prog[pc]!.code === (BPF_LD | BPF_MEM) ? BPF_LD | BPF_IMM : BPF_LDX | BPF_IMM, prog[pc]!.k);
    }
    return prog;
  });
}

/** Sets the fields `ins`'s opcode ignores (jt/jf of non-conditional, k of X forms etc.). */
function addJunk(ins: Insn, junk: { jt: number; jf: number; k: number }): Insn {
  const { code } = ins;
  const cls = code & 7;
  const conditional = cls === BPF_JMP && code !== (BPF_JMP | BPF_JA);
  const out = { ...ins };
  if (!conditional) {
    out.jt = junk.jt;
    out.jf = junk.jf;
  }
  const kUnused =
    code === (BPF_LD | BPF_W | BPF_LEN) ||
    code === (BPF_LDX | BPF_W | BPF_LEN) ||
    code === (BPF_ALU | BPF_NEG) ||
    cls === BPF_MISC ||
    code === (BPF_RET | BPF_A) ||
    ((cls === BPF_ALU || cls === BPF_JMP) && (code & BPF_X) !== 0);
  if (kUnused) out.k = junk.k;
  return out;
}

test("property: assemble(disassemble(P)) deep-equals P for random valid programs", () => {
  const names = (nr: number): string | undefined => (nr < 400 ? `sys${nr}` : undefined);
  fc.assert(
    fc.property(validPrograms(60), (prog) => {
      assert.deepEqual(validateProgram(prog), []);
      assert.deepEqual(assemble(disassemble(prog)), prog);
      assert.deepEqual(assemble(disassemble(prog, { raw: true })), prog);
      assert.deepEqual(assemble(disassemble(prog, { header: false, syscallName: names })), prog);
    }),
    { seed: 1234567, numRuns: 4000 },
  );
});

test("property: round trip of long valid programs (jumps up to 255, long ja)", () => {
  fc.assert(
    fc.property(validPrograms(700), (prog) => {
      assert.deepEqual(validateProgram(prog), []);
      assert.deepEqual(assemble(disassemble(prog)), prog);
    }),
    { seed: 7, numRuns: 60 },
  );
});

test("property: round trip holds for arbitrary instructions too (invalid programs)", () => {
  const anyInsn = fc.record({
    code: fc.oneof(fc.nat(0xff), fc.nat(0xffff)),
    jt: fc.nat(255),
    jf: fc.nat(255),
    k: u32,
  }).map((r): Insn => ({ code: r.code, jt: r.jt, jf: r.jf, k: r.k })); // plain objects for deepEqual
  fc.assert(
    fc.property(fc.array(anyInsn, { maxLength: 30 }), (prog) => {
      assert.deepEqual(assemble(disassemble(prog)), prog);
      assert.deepEqual(assemble(disassemble(prog, { raw: true })), prog);
    }),
    { seed: 99, numRuns: 3000 },
  );
});
