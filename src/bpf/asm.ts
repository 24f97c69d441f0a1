// Text -> seccomp BPF program. Parses exactly what disassemble() prints (with or without
// the raw columns) and a hand-written form with symbolic labels. Pure code: no I/O.
//
// One instruction per line; `;` starts a comment; blank lines are ignored.
//
//   line        := [index ":"] {label ":"} [raw] [instruction] [";" comment]
//   index       := decimal digits — must equal the position of the line's instruction
//                  (disassembler output starts every line with one, e.g. "0007:")
//   label       := identifier ([A-Za-z_][A-Za-z0-9_.]*), not of the form L<digits>
//   raw         := code jt jf k — four numbers, the struct sock_filter fields; with an
//                  instruction they must agree with it, alone they are the instruction
//   instruction :=
//     ld  [field] | ld M[n] | ld #len | ld #k      field: nr, arch, ip.lo, ip.hi,
//     ldi #k                                              args[0-5].lo, args[0-5].hi,
//     ldx M[n] | ldx #len | ldx #k | ldxi #k              or a byte offset
//     st M[n] | stx M[n]                           n: 0..15
//     add|sub|mul|div|and|or|xor|lsh|rsh  #k | x
//     neg | tax | txa
//     ja target                                    (also: jmp)
//     jeq|jgt|jge|jset  #k|x, target [, target]    one target: false falls through
//     jne|jlt|jle       #k|x, target [, target]    = jeq/jge/jgt with targets swapped
//     ret A | ret #k | ret ACTION                  ACTION: ALLOW, LOG, ERRNO(n), KILL,
//                                                  KILL_PROCESS, KILL_THREAD, TRAP(n),
//                                                  USER_NOTIF, TRACE(n); any may take (n)
//     .insn code, jt, jf, k                        any raw instruction
//   target      := label | L<index> (absolute, e.g. L0042) | +<n> (skip n instructions)
//   numbers     := decimal or 0x hex; `#` before an immediate is optional; an immediate
//                  may be negative (-1 = 0xffffffff)
//
// Mnemonics, x, A, field and action names are case-insensitive; labels are not.
// Errors throw AsmError with a 1-based line and column.

import { BPF_ALU, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_MEMWORDS, BPF_X, type Insn } from "./insn.js";
import { ALU_OPS, JUMP_OPS, OPCODES } from "./disasm.js";
import { SECCOMP_DATA_SIZE, SECCOMP_RET_ACTIONS, dataFieldName, seccompRet } from "../seccomp/index.js";
import { checkInsnOperands } from "./validate.js";
import { AsmError, Line } from "./asm-line.js";

export { AsmError } from "./asm-line.js";

type Target =
  | { kind: "label"; name: string; line: number; col: number }
  | { kind: "abs"; index: number; line: number; col: number }
  | { kind: "rel"; offset: number; line: number; col: number };

interface Pending {
  ins: Insn;
  line: number;
  col: number; // of the mnemonic (or raw fields)
  /** For JA: the k target; for conditional jumps: jt and jf targets. */
  ja?: Target;
  jt?: Target;
  jf?: Target;
  raw?: Insn;
  rawCol?: number;
}

const MNEMONICS =
  "ld, ldi, ldx, ldxi, st, stx, add, sub, mul, div, and, or, xor, lsh, rsh, neg, tax, txa, " +
  "ja, jeq, jne, jgt, jge, jlt, jle, jset, ret, .insn";
const ACTION_LIST = "ALLOW, LOG, ERRNO(n), KILL, KILL_PROCESS, KILL_THREAD, TRAP(n), USER_NOTIF, TRACE(n)";
const FIELD_LIST = "nr, arch, ip.lo, ip.hi, args[0-5].lo, args[0-5].hi, or a 4-byte-aligned offset below 64";
const TARGET_HELP = "a label, L<index> (e.g. L0012) or +<offset>";

const ACTIONS: ReadonlyMap<string, number> = new Map([
  ...SECCOMP_RET_ACTIONS.map((a) => [a.name as string, a.value] as const),
  ["KILL", seccompRet("KILL_THREAD")] as const, // linux/seccomp.h: SECCOMP_RET_KILL is KILL_THREAD
]);

const FIELD_OFFSETS: ReadonlyMap<string, number> = (() => {
  const m = new Map<string, number>();
  for (let off = 0; off < SECCOMP_DATA_SIZE; off += 4) m.set(dataFieldName(off)!, off);
  return m;
})();

function ins(code: number, k = 0, jt = 0, jf = 0): Insn {
  return { code, jt, jf, k: k >>> 0 };
}

/** M[n] with n in 0..15. */
function memSlot(l: Line): number {
  l.ws();
  const start = l.pos;
  const w = l.word();
  if (w === undefined || w.toUpperCase() !== "M" || l.peek() !== "[") {
    throw l.error(`expected a scratch slot M[0]..M[${BPF_MEMWORDS - 1}], found ${w ? `"${w}"` : l.found()}`, start);
  }
  l.expect("[", '"["');
  const n = l.bounded(BPF_MEMWORDS - 1, "scratch slot number");
  l.expect("]", '"]"');
  return n;
}

/** [field] or [offset]: a seccomp_data load offset. Cursor is at '['. */
function dataRef(l: Line): number {
  l.expect("[", '"["');
  l.ws();
  const start = l.pos;
  let off: number | undefined;
  if (/[0-9]/.test(l.peek())) {
    off = l.bounded(0xffffffff, "offset");
  } else {
    const w = l.word()?.toLowerCase();
    if (w === "args" && l.peek() === "[") {
      l.expect("[", '"["');
      const i = l.bounded(5, "argument number (0-5)");
      l.expect("]", '"]"');
      const half = l.word()?.toLowerCase();
      if (half !== ".lo" && half !== ".hi") {
        throw l.error(`expected .lo or .hi after args[${i}] (which 32-bit half of the 64-bit argument)`);
      }
      off = FIELD_OFFSETS.get(`args[${i}]${half}`);
    } else if (w !== undefined) {
      off = FIELD_OFFSETS.get(w);
      if (off === undefined && w === "ip") throw l.error("expected ip.lo or ip.hi (which 32-bit half)", start);
    }
    if (off === undefined) throw l.error(`expected a seccomp_data field: ${FIELD_LIST}`, start);
  }
  l.expect("]", '"]"');
  return off;
}

function target(l: Line): Target {
  l.ws();
  const col = l.pos + 1;
  const line = l.lineNo;
  if (l.eat("+")) {
    const offset = l.bounded(0xffffffff, "jump offset");
    return { kind: "rel", offset, line, col };
  }
  const w = l.word();
  if (w === undefined || w.startsWith(".")) {
    throw new AsmError(line, col, `expected a jump target: ${TARGET_HELP}; found ${w ? `"${w}"` : l.found()}`);
  }
  const abs = /^L([0-9]+)$/.exec(w);
  if (abs) return { kind: "abs", index: Number(abs[1]), line, col };
  return { kind: "label", name: w, line, col };
}

/** `#k` or `x` as the source operand of an ALU op or a conditional jump. */
function source(l: Line): { x: boolean; k: number } {
  const w = l.peekWord();
  if (w !== undefined && w.toLowerCase() === "x") {
    l.word();
    return { x: true, k: 0 };
  }
  if (w !== undefined) {
    l.ws();
    throw l.error(`expected #<number> or x, found "${w}"`);
  }
  return { x: false, k: l.imm("#<number> or x") };
}

function retOperand(l: Line): Insn {
  l.ws();
  const start = l.pos;
  const w = l.peekWord();
  if (w === undefined) return ins(OPCODES.RET_K, l.imm(`A, a number, or a seccomp action (${ACTION_LIST})`));
  l.word();
  if (w.toLowerCase() === "a") return ins(OPCODES.RET_A);
  const action = ACTIONS.get(w.toUpperCase());
  if (action === undefined) {
    throw l.error(`unknown return value "${w}"; expected A, a number, or a seccomp action (${ACTION_LIST})`, start);
  }
  let data = 0;
  if (l.eat("(")) {
    data = l.bounded(0xffff, `${w.toUpperCase()} data (0..65535)`);
    l.expect(")", '")"');
  } else if (w.toUpperCase() === "ERRNO") {
    throw l.error("ERRNO needs an errno value: ERRNO(n), e.g. ERRNO(1) for EPERM");
  }
  return ins(OPCODES.RET_K, (action | data) >>> 0);
}

/** Parses the instruction at the cursor (mnemonic already read as `op`). */
function instruction(l: Line, op: string, opCol: number): Pending {
  const p: Pending = { ins: ins(0), line: l.lineNo, col: opCol };
  const lower = op.toLowerCase();
  switch (lower) {
    case "ld":
    case "ldx": {
      const isX = lower === "ldx";
      const c = l.peek();
      if (c === "[") {
        if (isX) throw l.error("ldx cannot load from seccomp_data; use ld [field] then tax");
        p.ins = ins(OPCODES.LD_ABS, dataRef(l));
      } else if ((c === "M" || c === "m") && /^[Mm][ \t]*\[/.test(l.text.slice(l.pos))) {
        const k = memSlot(l);
        p.ins = ins(isX ? OPCODES.LDX_MEM : OPCODES.LD_MEM, k);
      } else {
        const save = l.pos;
        l.eat("#");
        if (l.eatWord("len")) {
          p.ins = ins(isX ? OPCODES.LDX_LEN : OPCODES.LD_LEN);
        } else {
          l.pos = save;
          p.ins = ins(isX ? OPCODES.LDX_IMM : OPCODES.LD_IMM, l.imm(`[field], M[n], #len or #<number>`));
        }
      }
      break;
    }
    case "ldi":
      p.ins = ins(OPCODES.LD_IMM, l.imm());
      break;
    case "ldxi":
      p.ins = ins(OPCODES.LDX_IMM, l.imm());
      break;
    case "st":
      p.ins = ins(OPCODES.ST, memSlot(l));
      break;
    case "stx":
      p.ins = ins(OPCODES.STX, memSlot(l));
      break;
    case "neg":
      p.ins = ins(OPCODES.NEG);
      break;
    case "tax":
      p.ins = ins(OPCODES.TAX);
      break;
    case "txa":
      p.ins = ins(OPCODES.TXA);
      break;
    case "ja":
    case "jmp":
      p.ins = ins(OPCODES.JA);
      p.ja = target(l);
      break;
    case "ret":
      p.ins = retOperand(l);
      break;
    case ".insn": {
      const code = l.bounded(0xffff, "code (16 bits)");
      l.expect(",", '","');
      const jt = l.bounded(0xff, "jt (8 bits)");
      l.expect(",", '","');
      const jf = l.bounded(0xff, "jf (8 bits)");
      l.expect(",", '","');
      const k = l.imm("k (32 bits)");
      p.ins = { code, jt, jf, k };
      break;
    }
    case "ldh":
    case "ldb":
    case "ldxb":
    case "mod":
      throw l.error(`${lower} is classic BPF that seccomp filters cannot use; write .insn code, jt, jf, k to emit it anyway`, opCol - 1);
    default: {
      const alu = ALU_OPS.get(lower);
      if (alu !== undefined) {
        const s = source(l);
        p.ins = ins(BPF_ALU | alu | (s.x ? BPF_X : BPF_K), s.k);
        break;
      }
      let jop = JUMP_OPS.get(lower);
      let swap = false;
      if (jop === undefined) {
        const inverse: Record<string, number> = { jne: BPF_JEQ, jlt: BPF_JGE, jle: BPF_JGT };
        jop = inverse[lower];
        swap = jop !== undefined;
      }
      if (jop !== undefined) {
        const s = source(l);
        p.ins = ins(BPF_JMP | jop | (s.x ? BPF_X : BPF_K), s.k);
        l.expect(",", `"," and a jump target (${TARGET_HELP})`);
        const t1 = target(l);
        const t2: Target = l.eat(",") ? target(l) : { kind: "rel", offset: 0, line: l.lineNo, col: l.pos + 1 };
        p.jt = swap ? t2 : t1;
        p.jf = swap ? t1 : t2;
        break;
      }
      throw l.error(`unknown instruction "${op}"; expected one of: ${MNEMONICS}`, opCol - 1);
    }
  }
  return p;
}

/**
 * Assembles `text` (see the grammar at the top of this file) into instructions.
 * Throws AsmError (with line and column) on the first problem found.
 */
export function assemble(text: string): Insn[] {
  const pending: Pending[] = [];
  const labels = new Map<string, { index: number; line: number }>();
  const srcLines = text.split(/\r?\n/);

  for (let li = 0; li < srcLines.length; li++) {
    const lineNo = li + 1;
    const full = srcLines[li]!;
    const semi = full.indexOf(";");
    const l = new Line(semi >= 0 ? full.slice(0, semi) : full, lineNo);
    if (l.atEnd()) continue;

    // "0007:" — the disassembler's instruction index.
    let hadIndex = false;
    const idx = /^([0-9]+)[ \t]*:/.exec(l.text.slice(l.pos));
    if (idx) {
      const want = pending.length;
      if (Number(idx[1]) !== want) {
        throw l.error(
          `line number ${idx[1]} does not match this instruction's position ${want} ` +
            `(instructions are numbered from 0 in order; were lines added or removed?)`,
        );
      }
      l.pos += idx[0].length;
      hadIndex = true;
    }

    // Label definitions.
    for (;;) {
      l.ws();
      const m = /^([A-Za-z_][A-Za-z0-9_.]*)[ \t]*:/.exec(l.text.slice(l.pos));
      if (!m) break;
      const name = m[1]!;
      if (/^L[0-9]+$/.test(name)) {
        throw l.error(`label name "${name}" is reserved: L<digits> refers to an instruction by index`);
      }
      const prev = labels.get(name);
      if (prev !== undefined) throw l.error(`label "${name}" is already defined on line ${prev.line}`);
      labels.set(name, { index: pending.length, line: lineNo });
      l.pos += m[0].length;
    }
    if (l.atEnd()) {
      if (hadIndex) throw l.error("expected an instruction after the line number");
      continue;
    }

    // Raw struct sock_filter fields: code jt jf k.
    let raw: Insn | undefined;
    let rawCol: number | undefined;
    if (/[0-9]/.test(l.peek())) {
      rawCol = l.pos + 1;
      const code = l.bounded(0xffff, "code (16 bits)");
      const jt = l.bounded(0xff, "jt (8 bits)");
      const jf = l.bounded(0xff, "jf (8 bits)");
      const k = l.bounded(0xffffffff, "k (32 bits)");
      raw = { code, jt, jf, k };
      if (l.atEnd()) {
        pending.push({ ins: raw, line: lineNo, col: rawCol });
        continue;
      }
    }

    const opCol = l.pos + 1;
    const op = l.word();
    if (op === undefined) {
      throw l.error(`expected an instruction (${MNEMONICS}), found ${l.found()}`);
    }
    const p = instruction(l, op, opCol);
    if (!l.atEnd()) throw l.error(`unexpected ${l.found()} after the instruction`);
    if (!op.startsWith(".")) {
      // Operand ranges the kernel would refuse (div #0, lsh #32, ld [6], ...): say so here.
      const problems = checkInsnOperands(p.ins);
      if (problems.length > 0) throw new AsmError(lineNo, opCol, `${problems.join("; ")} (in "${op}")`);
    }
    if (raw !== undefined) {
      p.raw = raw;
      p.rawCol = rawCol!;
    }
    pending.push(p);
  }

  const prog: Insn[] = [];
  for (let i = 0; i < pending.length; i++) {
    const p = pending[i]!;
    const out: Insn = { ...p.ins };
    if (p.ja !== undefined) out.k = resolve(p.ja, i, labels, 0xffffffff, "ja");
    if (p.jt !== undefined) out.jt = resolve(p.jt, i, labels, 0xff, "jt");
    if (p.jf !== undefined) out.jf = resolve(p.jf, i, labels, 0xff, "jf");
    if (p.raw !== undefined) {
      const r = p.raw;
      if (r.code !== out.code || r.jt !== out.jt || r.jf !== out.jf || r.k !== out.k) {
        throw new AsmError(
          p.line,
          p.rawCol!,
          `raw fields (${fields(r)}) do not match the instruction, which assembles to (${fields(out)})`,
        );
      }
    }
    prog.push(out);
  }
  return prog;
}

function fields(i: Insn): string {
  return `code 0x${i.code.toString(16)}, jt ${i.jt}, jf ${i.jf}, k 0x${(i.k >>> 0).toString(16)}`;
}

function resolve(
  t: Target,
  from: number,
  labels: ReadonlyMap<string, { index: number }>,
  max: number,
  field: string,
): number {
  let dest: number;
  let what: string;
  if (t.kind === "rel") {
    if (t.offset > max) {
      throw new AsmError(t.line, t.col, `jump too far: offset +${t.offset} does not fit in ${field} (maximum ${max})`);
    }
    return t.offset;
  } else if (t.kind === "abs") {
    dest = t.index;
    what = `L${t.index}`;
  } else {
    const def = labels.get(t.name);
    if (def === undefined) {
      throw new AsmError(t.line, t.col, `undefined label "${t.name}"; expected ${TARGET_HELP}`);
    }
    dest = def.index;
    what = `"${t.name}" (insn ${dest})`;
  }
  const offset = dest - from - 1;
  if (offset < 0) {
    throw new AsmError(
      t.line,
      t.col,
      `jump target ${what} is not after this instruction (insn ${from}); classic BPF only jumps forward`,
    );
  }
  if (offset > max) {
    throw new AsmError(
      t.line,
      t.col,
      `jump too far: target ${what} is ${offset} instructions past the next one, but ${field} holds at most ${max}` +
        (max === 0xff ? " (jump to a nearby `ja` instead)" : ""),
    );
  }
  return offset;
}
