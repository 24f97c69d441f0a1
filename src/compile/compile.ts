// Policy decisions for one context → a classic BPF seccomp program.
//
// Shape: check arch (a foreign arch is killed), load nr, then a balanced binary search over
// ranges of syscall numbers that share a decision (x86_64's x32 range is one of them, killed).
// Argument checks appear only under the leaves of syscalls that have conditions, so the path
// to every unconditional ALLOW reads only `arch` and `nr` and the kernel can cache it as a
// constant action. The program is built backwards (each piece is emitted after what it jumps
// to), so all jumps go forward; a conditional jump further than 255 goes through a `ja`.

import {
  BPF_ABS, BPF_ALU, BPF_AND, BPF_JA, BPF_JEQ, BPF_JGE, BPF_JGT, BPF_JMP, BPF_K, BPF_LD, BPF_MAXINSNS,
  BPF_RET, BPF_W, jump, stmt, type Insn,
} from "../bpf/insn.js";
import {
  AUDIT_ARCH, SECCOMP_DATA_ARCH, SECCOMP_DATA_NR, X32_SYSCALL_BIT, argOffset, seccompRet,
} from "../seccomp/index.js";
import { hasErrno, seccompActionFor, type Action } from "../policy/actions.js";
import type { ArgCondition } from "../policy/entries.js";
import { conditionCount, contextDecisions, contextKey, decisionFor, type ContextDecisions, type ContextSpec, type Decision, type Leaf } from "../policy/decision.js";
import { PolicyError, type SourceLoc } from "../policy/errors.js";
import type { Policy } from "../policy/policy.js";
import { maxSyscallNumber, type Arch } from "../syscalls/index.js";

/** A policy that cannot be compiled; where known, at the place in the policy that causes it. */
export class CompileError extends PolicyError {
  constructor(loc: SourceLoc | undefined, problem: string, hint?: string) {
    super(loc, problem, hint);
    this.name = "CompileError";
  }
}

/** The seccomp return value of an action (the errno of `error` in the data bits). */
export function actionRet(a: Action): number {
  return seccompRet(seccompActionFor(a.kind), hasErrno(a.kind) ? a.errno! : 0);
}

export interface CompileOptions {
  /**
   * Maps a decided leaf of syscall number `nr` to a return value; defaults to
   * actionRet(leaf.action). The launcher uses it to send some decisions to its supervisor.
   */
  retFor?: (leaf: Leaf, nr: number) => number;
}

export function compilePolicy(policy: Policy, arch: Arch, context: ContextSpec, opts: CompileOptions = {}): Insn[] {
  return compileDecisions(contextDecisions(policy, arch, context), opts);
}

interface Range {
  lo: number; // first nr, inclusive
  decision: Decision;
}

/** Consecutive numbers with the same unconditional return value become one range. */
function buildRanges(cd: ContextDecisions, retOf: (l: Leaf, nr: number) => number): Range[] {
  const ranges: Range[] = [];
  const top = maxSyscallNumber(cd.arch);
  let prevRet: number | undefined;
  const push = (lo: number, d: Decision) => {
    const ret = d.kind === "leaf" ? retOf(d, lo) : undefined;
    if (ret !== undefined && ret === prevRet) return;
    ranges.push({ lo, decision: d });
    prevRet = ret;
  };
  for (let nr = 0; nr <= top; nr++) push(nr, decisionFor(cd, nr));
  push(top + 1, cd.unknownDecision);
  if (cd.arch === "x86_64") {
    // x32 syscalls arrive with the x86_64 audit arch and bit 30 set in nr: a different ABI.
    push(X32_SYSCALL_BIT, { kind: "leaf", action: { kind: "kill" }, source: "arch" });
  }
  return ranges;
}

export function compileDecisions(cd: ContextDecisions, opts: CompileOptions = {}): Insn[] {
  const retOf = opts.retFor ?? ((l: Leaf) => actionRet(l.action));
  const e = new BackwardEmitter();
  const ranges = buildRanges(cd, retOf);

  const emitDecision = (d: Decision, nr: number): number => {
    if (d.kind === "leaf") return e.ret(retOf(d, nr));
    const then = emitDecision(d.then, nr);
    const otherwise = emitDecision(d.else, nr);
    let cur = then;
    for (let i = d.conds.length - 1; i >= 0; i--) cur = emitCondition(e, d.conds[i]!, cur, otherwise);
    return cur;
  };
  // Binary search over ranges[lo..hi): A holds nr at every search node.
  const emitSearch = (lo: number, hi: number): number => {
    if (hi - lo === 1) return emitDecision(ranges[lo]!.decision, ranges[lo]!.lo);
    const mid = (lo + hi) >>> 1;
    const right = emitSearch(mid, hi);
    const left = emitSearch(lo, mid);
    return e.jump(BPF_JMP | BPF_JGE | BPF_K, ranges[mid]!.lo, right, left);
  };
  const search = emitSearch(0, ranges.length);
  const loadNr = e.seq(stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_NR), search);
  const kill = e.ret(seccompRet("KILL_PROCESS"));
  const archOk = e.jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH[cd.arch], loadNr, kill);
  e.seq(stmt(BPF_LD | BPF_W | BPF_ABS, SECCOMP_DATA_ARCH), archOk);
  const prog = e.finish();
  if (prog.length > BPF_MAXINSNS) {
    // Point at the syscall whose argument conditions weigh most, if any.
    let heaviest: { name: string; conds: number; loc?: SourceLoc } | undefined;
    for (const n of cd.named.values()) {
      const conds = conditionCount(n.decision);
      if (conds > (heaviest?.conds ?? 0)) heaviest = { name: n.name, conds, ...(n.loc ? { loc: n.loc } : {}) };
    }
    throw new CompileError(
      heaviest?.loc,
      `the compiled program for ${contextKey(cd.context)} on ${cd.arch} would have ${prog.length} instructions, over the kernel's limit of ${BPF_MAXINSNS}` +
        (heaviest ? ` ("${heaviest.name}" alone has ${heaviest.conds} argument tests)` : ""),
      heaviest
        ? "group argument conditions (a range argN >= a, argN <= b, or argN & mask == value), or let a default decide"
        : "give syscalls with the same action neighbouring numbers, or use a default action",
    );
  }
  return prog;
}

/** Jumps to `t` when the condition holds, else to `f`; 64-bit arguments compare both halves. */
function emitCondition(e: BackwardEmitter, c: ArgCondition, t: number, f: number): number {
  const lo32 = Number(c.value & 0xffffffffn);
  const hi32 = Number(c.value >> 32n);
  const wide = c.width === 64;
  const load = (half: "lo" | "hi", next: number) => e.seq(stmt(BPF_LD | BPF_W | BPF_ABS, argOffset(c.arg, half)), next);
  const jeq = BPF_JMP | BPF_JEQ | BPF_K;
  const jgt = BPF_JMP | BPF_JGT | BPF_K;
  const jge = BPF_JMP | BPF_JGE | BPF_K;
  switch (c.op) {
    case "eq":
    case "ne": {
      const [yes, no] = c.op === "eq" ? [t, f] : [f, t];
      const low = load("lo", e.jump(jeq, lo32, yes, no));
      return wide ? load("hi", e.jump(jeq, hi32, low, no)) : low;
    }
    case "gt":
    case "ge":
    case "lt":
    case "le": {
      // gt/ge directly; lt is !(ge) and le is !(gt).
      const strict = c.op === "gt" || c.op === "le";
      const [yes, no] = c.op === "gt" || c.op === "ge" ? [t, f] : [f, t];
      const low = load("lo", e.jump(strict ? jgt : jge, lo32, yes, no));
      if (!wide) return low;
      const hiEqual = e.jump(jeq, hi32, low, no);
      return load("hi", e.jump(jgt, hi32, yes, hiEqual));
    }
    case "masked_ne":
      return emitCondition(e, { ...c, op: "masked_eq" }, f, t);
    case "masked_eq": {
      const mask = c.mask!;
      const mlo = Number(mask & 0xffffffffn);
      const mhi = Number(mask >> 32n);
      const part = (half: "lo" | "hi", m: number, v: number, yes: number) => {
        if (m === 0) return yes; // no bits of this half are tested (and v is 0 there)
        const test = e.jump(jeq, v, yes, f);
        const masked = m === 0xffffffff ? test : e.seq(stmt(BPF_ALU | BPF_AND | BPF_K, m), test);
        return load(half, masked);
      };
      const low = part("lo", mlo, lo32, t);
      return wide ? part("hi", mhi, hi32, low) : low;
    }
  }
}

/**
 * Builds a program from its end to its start. Positions count from the end (0 = the last
 * instruction), so a position stays valid as more code is put in front of it.
 */
class BackwardEmitter {
  private rev: Insn[] = [];
  private rets = new Map<number, number>();

  /** A return, shared by every path that returns the same value. */
  ret(k: number): number {
    const have = this.rets.get(k >>> 0);
    if (have !== undefined) return have;
    const pos = this.push(stmt(BPF_RET | BPF_K, k));
    this.rets.set(k >>> 0, pos);
    return pos;
  }

  /** An instruction that falls through to `next`. */
  seq(ins: Insn, next: number): number {
    if (next !== this.rev.length - 1) this.push(this.ja(next));
    return this.push(ins);
  }

  /** A conditional jump; the same target both ways needs no jump at all. */
  jump(code: number, k: number, t: number, f: number): number {
    if (t === f) return t;
    t = this.reach(t);
    f = this.reach(f);
    // Placing f's copy moved this jump one further from t: reach again (t is then adjacent).
    t = this.reach(t);
    const here = this.rev.length;
    return this.push(jump(code, k, here - t - 1, here - f - 1));
  }

  /**
   * A target a conditional jump from here can reach. A far return is copied next to the jump
   * (one instruction, like a `ja`, but one fewer to execute), and later jumps share the copy.
   */
  private reach(target: number): number {
    if (this.rev.length - target - 1 <= 255) return target;
    const ins = this.rev[target]!;
    if (ins.code === (BPF_RET | BPF_K)) {
      const pos = this.push(stmt(BPF_RET | BPF_K, ins.k));
      this.rets.set(ins.k >>> 0, pos);
      return pos;
    }
    // Not a return: hop through a `ja`, which can jump anywhere.
    return this.push(this.ja(target));
  }

  private ja(target: number): Insn {
    return stmt(BPF_JMP | BPF_JA, this.rev.length - target - 1);
  }

  private push(ins: Insn): number {
    this.rev.push(ins);
    return this.rev.length - 1;
  }

  finish(): Insn[] {
    return [...this.rev].reverse();
  }
}
