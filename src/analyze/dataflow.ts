// Bounded backward data flow inside one function: which values can a register hold at a given
// instruction? Pure: works on decoded instructions (Capstone's text form).
//
// Rules (both arches):
// - A constant load (x86 `mov r, imm`, `xor r, r`; aarch64 `mov`/`movz` with an immediate) ends a
//   path with that constant.
// - A register-to-register move (`mov`, `movsxd`, `movzx`; aarch64 `mov`, `sxtw`, `uxtw`) switches
//   the tracked register; sign/zero extension does not change a syscall number.
// - Any other write to the tracked register ends the path as unknown: explicit (first operand of a
//   writing instruction), or implicit (x86: `syscall` writes rax/rcx/r11, `call` clobbers the
//   caller-saved registers, `cpuid`, `rdtsc`, one-operand `mul`/`div`, `cmpxchg`, string ops;
//   aarch64: `bl`/`blr` clobber x0-x18 and x30, `svc` writes x0).
// - At a merge point every predecessor is followed: the fall-through and every direct jump in the
//   function that targets the instruction. A block entered only by an unconditional transfer with
//   no known source (an indirect jump's target) ends as unknown.
// - Reaching the function entry with an argument register (x86 rdi..r9, aarch64 x0..x7) gives
//   "argument k": the function is a wrapper whose number its callers pass.
// - At most MAX_STEPS instructions are examined per query; paths beyond end as unknown.

import type { Arch } from "../syscalls/index.js";
import type { Insn } from "./disasm.js";

export type Outcome = { kind: "const"; value: number } | { kind: "arg"; index: number } | { kind: "unknown"; reason: string };

export const MAX_STEPS = 400;

const X86_FAMILY: Record<string, string> = {};
for (const [full, ...aliases] of [
  ["rax", "eax", "ax", "al", "ah"],
  ["rbx", "ebx", "bx", "bl", "bh"],
  ["rcx", "ecx", "cx", "cl", "ch"],
  ["rdx", "edx", "dx", "dl", "dh"],
  ["rsi", "esi", "si", "sil"],
  ["rdi", "edi", "di", "dil"],
  ["rbp", "ebp", "bp", "bpl"],
  ["rsp", "esp", "sp", "spl"],
] as const) {
  X86_FAMILY[full] = full;
  for (const a of aliases) X86_FAMILY[a] = full;
}
for (let i = 8; i <= 15; i++) for (const s of ["", "d", "w", "b"]) X86_FAMILY[`r${i}${s}`] = `r${i}`;

export const ARG_REGS: Readonly<Record<Arch, readonly string[]>> = {
  x86_64: ["rdi", "rsi", "rdx", "rcx", "r8", "r9"],
  aarch64: ["x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7"],
};
/** The register that holds the syscall number at the trap instruction. */
export const NUMBER_REG: Readonly<Record<Arch, string>> = { x86_64: "rax", aarch64: "x8" };

const X86_CALL_CLOBBERED = new Set(["rax", "rcx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11"]);
const X86_NO_WRITE = new Set(["cmp", "test", "bt", "push", "nop", "endbr64", "ucomisd", "ucomiss", "comisd", "comiss", "prefetcht0", "prefetchnta", "clflush", "ptest"]);
const X86_IMPLICIT_RAX = /^(syscall|cpuid|rdtscp?|xgetbv|rdpid|lods.*|scas.*|in|cmpxchg.*|cwde|cbw)$/;

export function regFamily(arch: Arch, name: string): string | undefined {
  const n = name.trim();
  if (arch === "x86_64") return X86_FAMILY[n];
  const m = /^([xw])(\d+)$/.exec(n);
  if (m) return `x${m[2]}`;
  if (n === "xzr" || n === "wzr") return "xzr";
  if (n === "sp" || n === "wsp") return "sp";
  return undefined;
}

export function splitOperands(opStr: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = "";
  for (const ch of opStr) {
    if (ch === "[" || ch === "{") depth++;
    else if (ch === "]" || ch === "}") depth--;
    if (ch === "," && depth === 0) {
      out.push(cur.trim());
      cur = "";
    } else cur += ch;
  }
  if (cur.trim() !== "") out.push(cur.trim());
  return out;
}

function parseImm(s: string): number | undefined {
  const t = s.replace(/^#/, "").trim();
  const m = /^(-)?(0x[0-9a-f]+|\d+)$/i.exec(t);
  if (!m) return undefined;
  const v = Number(m[2]);
  return m[1] ? -v : v;
}

type Effect = { kind: "none" } | { kind: "const"; value: number } | { kind: "move"; from: string } | { kind: "unknown"; reason: string };

/** What `insn` does to register family `reg`. */
export function effectOn(arch: Arch, insn: Insn, reg: string): Effect {
  return arch === "x86_64" ? x86Effect(insn, reg) : a64Effect(insn, reg);
}

function x86Effect(insn: Insn, reg: string): Effect {
  const m = insn.mnemonic.replace(/^(lock|rep|repne|repe|bnd|notrack) /, "");
  const ops = splitOperands(insn.opStr);
  if (m === "call") return X86_CALL_CLOBBERED.has(reg) ? { kind: "unknown", reason: "set by a call" } : { kind: "none" };
  if (m === "syscall") return reg === "rax" || reg === "rcx" || reg === "r11" ? { kind: "unknown", reason: "result of an earlier syscall" } : { kind: "none" };
  if (reg === "rax" && (X86_IMPLICIT_RAX.test(m) || (/^(i?mul|i?div)$/.test(m) && ops.length === 1))) {
    if (m === "cwde" || m === "cbw") return { kind: "none" };
    return { kind: "unknown", reason: `written by ${m}` };
  }
  if (reg === "rdx" && (/^(cdq|cqo|cwd|rdtscp?|cpuid|xgetbv)$/.test(m) || (/^(i?mul|i?div)$/.test(m) && ops.length === 1))) return { kind: "unknown", reason: `written by ${m}` };
  if ((reg === "rdi" || reg === "rsi" || reg === "rcx") && /^(movs|stos|cmps|scas|lods)/.test(m)) return { kind: "unknown", reason: `changed by ${m}` };
  if (m === "cdqe" || m === "cltq") return { kind: "none" };
  if (m === "xchg" && ops.length === 2) {
    const a = regFamily("x86_64", ops[0]!);
    const b = regFamily("x86_64", ops[1]!);
    if (a === reg && b === reg) return { kind: "none" };
    if (a === reg) return b ? { kind: "move", from: b } : { kind: "unknown", reason: "xchg with memory" };
    if (b === reg) return a ? { kind: "move", from: a } : { kind: "unknown", reason: "xchg with memory" };
    return { kind: "none" };
  }
  if (ops.length === 0) return { kind: "none" };
  const dest = regFamily("x86_64", ops[0]!);
  if (dest !== reg || X86_NO_WRITE.has(m) || m.startsWith("j") || (/^(cmp|test)/.test(m) && !m.startsWith("cmpxchg"))) return { kind: "none" };
  if ((m === "mov" || m === "movabs") && ops.length === 2) {
    const imm = parseImm(ops[1]!);
    if (imm !== undefined) return { kind: "const", value: imm };
    const src = regFamily("x86_64", ops[1]!);
    if (src) return { kind: "move", from: src };
    return { kind: "unknown", reason: `loaded from memory (${insn.mnemonic} ${insn.opStr})` };
  }
  if ((m === "xor" || m === "sub") && ops.length === 2 && regFamily("x86_64", ops[1]!) === reg) return { kind: "const", value: 0 };
  if ((m === "movsxd" || m === "movsx" || m === "movzx") && ops.length === 2) {
    const src = regFamily("x86_64", ops[1]!);
    if (src) return { kind: "move", from: src };
  }
  return { kind: "unknown", reason: `written by ${insn.mnemonic} ${insn.opStr}` };
}

const A64_NO_DEST = /^(str|stp|stur|strb|strh|sturb|sturh|stlr|stxr|stlxr|cmp|cmn|tst|cbn?z|tbn?z|b|b\..*|br|blr|bl|ret|svc|prfm|nop|dmb|dsb|isb|hint|bti|paciasp|autiasp|msr|st1|st2|st3|st4|fcmp|fcmpe|ccmp|ccmn|brk|hlt|udf|yield|clrex)$/;

function a64Effect(insn: Insn, reg: string): Effect {
  const m = insn.mnemonic;
  const ops = splitOperands(insn.opStr);
  if (m === "bl" || m === "blr" || m.startsWith("blra")) {
    const n = Number(reg.slice(1));
    return reg === "x30" || (reg.startsWith("x") && n <= 18) ? { kind: "unknown", reason: "set by a call" } : { kind: "none" };
  }
  if (m === "svc") return reg === "x0" ? { kind: "unknown", reason: "result of an earlier syscall" } : { kind: "none" };
  if (A64_NO_DEST.test(m)) {
    // Exclusive stores write their status register (first operand).
    if (/^st(l)?xr/.test(m) && regFamily("aarch64", ops[0] ?? "") === reg) return { kind: "unknown", reason: `written by ${m}` };
    // Pre/post-indexed stores write back the base register.
    if (/!$|\],\s*#/.test(insn.opStr) && new RegExp(`\\[${"[xw]"}${reg.slice(1)}\\b`).test(insn.opStr)) return { kind: "unknown", reason: "base register written back" };
    return { kind: "none" };
  }
  if (ops.length === 0) return { kind: "none" };
  const dests = /^(ldp|ldnp|ldpsw|ldaxp|ldxp|casp.*)$/.test(m) ? [ops[0]!, ops[1] ?? ""] : [ops[0]!];
  const writesBack = /!$|\],\s*#/.test(insn.opStr) && new RegExp(`\\[[xw]${reg.slice(1)}\\b`).test(insn.opStr);
  if (!dests.some((d) => regFamily("aarch64", d) === reg)) {
    return writesBack ? { kind: "unknown", reason: "base register written back" } : { kind: "none" };
  }
  if ((m === "mov" || m === "movz") && ops.length >= 2) {
    const imm = parseImm(ops[1]!);
    if (imm !== undefined) {
      const shift = ops[2] ? /lsl #(\d+)/.exec(ops[2])?.[1] : undefined;
      return { kind: "const", value: shift ? imm * 2 ** Number(shift) : imm };
    }
    const src = regFamily("aarch64", ops[1]!);
    if (src === "xzr") return { kind: "const", value: 0 };
    if (src) return { kind: "move", from: src };
  }
  if ((m === "sxtw" || m === "uxtw") && ops.length === 2) {
    const src = regFamily("aarch64", ops[1]!);
    if (src) return { kind: "move", from: src };
  }
  return { kind: "unknown", reason: `written by ${insn.mnemonic} ${insn.opStr}` };
}

export type Flow = "fall" | "jump" | "cond" | "call" | "end";

/** How control leaves `insn`, and its direct target if it has one. */
export function controlFlow(arch: Arch, insn: Insn): { flow: Flow; target?: number } {
  const m = insn.mnemonic.replace(/^(bnd|notrack) /, "");
  const ops = splitOperands(insn.opStr);
  const last = ops[ops.length - 1] ?? "";
  const target = parseImm(last);
  if (arch === "x86_64") {
    if (m === "jmp") return { flow: "jump", ...(target !== undefined && ops.length === 1 ? { target } : {}) };
    if (m === "ret" || m === "retf" || m === "hlt" || m === "ud2") return { flow: "end" };
    if (/^(j.*|loop.*)$/.test(m)) return { flow: "cond", ...(target !== undefined ? { target } : {}) };
    if (m === "call") return { flow: "call", ...(target !== undefined && ops.length === 1 ? { target } : {}) };
    return { flow: "fall" };
  }
  if (m === "b") return { flow: "jump", ...(target !== undefined ? { target } : {}) };
  if (m === "br" || m === "ret" || m.startsWith("reta") || m.startsWith("braa") || m === "brk" || m === "udf" || m === "hlt") return { flow: "end" };
  if (/^(b\..*|cbn?z|tbn?z)$/.test(m)) return { flow: "cond", ...(target !== undefined ? { target } : {}) };
  if (m === "bl") return { flow: "call", ...(target !== undefined ? { target } : {}) };
  if (m === "blr" || m.startsWith("blra")) return { flow: "call" };
  return { flow: "fall" };
}

/** Per-function index: instruction index by address and the direct jumps into each instruction. */
export interface FunctionCode {
  readonly arch: Arch;
  readonly insns: readonly Insn[];
  readonly indexOf: ReadonlyMap<number, number>;
  /** Instruction index → indexes of the direct jumps (and conditional branches) that target it. */
  readonly jumpSources: ReadonlyMap<number, number[]>;
}

export function indexFunction(arch: Arch, insns: readonly Insn[]): FunctionCode {
  const indexOf = new Map<number, number>();
  insns.forEach((ins, i) => indexOf.set(ins.address, i));
  const jumpSources = new Map<number, number[]>();
  insns.forEach((ins, i) => {
    const cf = controlFlow(arch, ins);
    if ((cf.flow === "jump" || cf.flow === "cond") && cf.target !== undefined) {
      const t = indexOf.get(cf.target);
      if (t !== undefined) {
        const list = jumpSources.get(t) ?? [];
        list.push(i);
        jumpSources.set(t, list);
      }
    }
  });
  return { arch, insns, indexOf, jumpSources };
}

/** Direct jumps into `address` from other functions (cold parts, shared tails), decoded. */
export type ExternalSources = (address: number) => Array<{ fn: FunctionCode; index: number }>;

/**
 * The values register family `reg` can hold on entry to instruction `at` (an index into
 * fn.insns). Duplicates are removed; an empty result never happens (at worst one unknown).
 * `external` finds jumps from outside the function into a block that has no predecessor inside.
 */
export function valuesAt(fn: FunctionCode, at: number, reg: string, external?: ExternalSources): Outcome[] {
  let steps = MAX_STEPS;
  const out = new Map<string, Outcome>();
  const visited = new Map<FunctionCode, Set<string>>();
  const add = (o: Outcome) => out.set(o.kind === "const" ? `c${o.value}` : o.kind === "arg" ? `a${o.index}` : `u${o.reason}`, o);
  const argRegs = ARG_REGS[fn.arch];

  // Worklist of (function, position, register): the value of `register` on entry to insns[position].
  const work: Array<[FunctionCode, number, string, boolean]> = [[fn, at, reg, true]];
  while (work.length > 0) {
    const [f, p, r, home] = work.pop()!;
    const key = `${p}:${r}`;
    let seen = visited.get(f);
    if (!seen) visited.set(f, (seen = new Set()));
    if (seen.has(key)) continue; // a loop adds no value the other paths do not
    seen.add(key);
    const sources = f.jumpSources.get(p) ?? [];
    for (const s of sources) work.push([f, s, r, home]); // a jump does not change registers
    const prev = p > 0 ? f.insns[p - 1]! : undefined;
    const fallsIn = prev !== undefined && !["jump", "end"].includes(controlFlow(f.arch, prev).flow);
    if (p === 0 && home) {
      const k = argRegs.indexOf(r);
      add(k >= 0 ? { kind: "arg", index: k } : { kind: "unknown", reason: `${r} at function entry` });
      continue;
    }
    if (!fallsIn) {
      // Alignment padding after a jump is dead code: no path enters it.
      if (sources.length === 0 && p > 0 && /^(nop|.* nop[lw]?)$/.test(f.insns[p]!.mnemonic)) continue;
      if (sources.length === 0) {
        const ext = external ? external(f.insns[p]!.address) : [];
        for (const e of ext) work.push([e.fn, e.index, r, false]);
        if (ext.length === 0) add({ kind: "unknown", reason: `${p === 0 ? "function entered" : "block at 0x" + f.insns[p]!.address.toString(16) + " entered"} only by jumps not found (indirect)` });
      }
      continue;
    }
    if (--steps < 0) {
      add({ kind: "unknown", reason: "search bound reached" });
      continue;
    }
    const e = effectOn(f.arch, prev!, r);
    if (e.kind === "none") work.push([f, p - 1, r, home]);
    else if (e.kind === "const") add({ kind: "const", value: e.value });
    else if (e.kind === "move") work.push([f, p - 1, e.from, home]);
    else add({ kind: "unknown", reason: e.reason });
  }
  return [...out.values()];
}
