// Sets of syscall arguments as OCI runtimes can test them.
//
// An OCI rule is a conjunction of comparisons, at most one per argument: runc splits two
// comparisons of the same argument into separate rules, so they are ORed, not ANDed (checked
// with runc 1.1.5: `arg0 != 1, arg0 != 2` in one rule refused AF_UNIX). And libseccomp compares
// all 64 bits, while pg_seccomp compares only the low 32 bits of an `int` argument.
//
// So every condition is turned into "cubes": (mask, value) pairs meaning `(arg & mask) == value`,
// which SCMP_CMP_MASKED_EQ tests exactly. A 32-bit condition's cubes have no mask bits in the
// upper half, so they ignore it exactly as the kernel and pg_seccomp do. Any condition (==, !=,
// <, <=, >, >=, masked == and !=, on 32 or 64 bits) and its negation is a finite union of cubes,
// so the export is exact, never an approximation.

import type { ArgCondition } from "../policy/entries.js";
import { sameAction } from "../policy/actions.js";
import type { Decision, Leaf } from "../policy/decision.js";

export const U64 = (1n << 64n) - 1n;
const U32 = 0xffffffffn;

/** `(arg & mask) == value`, with value a subset of mask. */
export interface Cube {
  mask: bigint;
  value: bigint;
}

/** A union of cubes over one argument. [] is empty; [{0,0}] is everything. */
export type CubeSet = Cube[];

export const FULL: CubeSet = [{ mask: 0n, value: 0n }];

function bits(mask: bigint): bigint[] {
  const out: bigint[] = [];
  for (let b = 63n; b >= 0n; b--) if ((mask >> b) & 1n) out.push(1n << b);
  return out;
}

function intersectCube(a: Cube, b: Cube): Cube | undefined {
  const common = a.mask & b.mask;
  if ((a.value & common) !== (b.value & common)) return undefined;
  return { mask: a.mask | b.mask, value: a.value | b.value };
}

function subsumes(a: Cube, b: Cube): boolean {
  // a contains b: a's fixed bits are fixed the same way in b.
  return (a.mask & b.mask) === a.mask && (b.value & a.mask) === a.value;
}

/** Merges cubes that differ in exactly one fixed bit, and drops cubes another contains. */
function simplify(set: CubeSet): CubeSet {
  let cur = set;
  for (let changed = true; changed; ) {
    changed = false;
    const out: CubeSet = [];
    for (const c of cur) {
      if (out.some((o) => subsumes(o, c))) {
        changed = true;
        continue;
      }
      const i = out.findIndex((o) => o.mask === c.mask && popcount(o.value ^ c.value) === 1);
      if (i >= 0) {
        const bit = out[i]!.value ^ c.value;
        out[i] = { mask: c.mask & ~bit, value: c.value & ~bit };
        changed = true;
        continue;
      }
      for (let j = out.length - 1; j >= 0; j--) if (subsumes(c, out[j]!)) out.splice(j, 1);
      out.push(c);
    }
    cur = out;
  }
  return cur;
}

function popcount(v: bigint): number {
  let n = 0;
  for (; v; v &= v - 1n) n++;
  return n;
}

export function intersect(a: CubeSet, b: CubeSet): CubeSet {
  const out: CubeSet = [];
  for (const x of a) for (const y of b) {
    const c = intersectCube(x, y);
    if (c) out.push(c);
  }
  // Simplifying is quadratic; a large intermediate set is kept as is (still exact).
  return out.length <= 128 ? simplify(out) : out;
}

/** The complement of one cube: for each fixed bit, "this bit differs, the ones before agree" (disjoint). */
function complementCube(c: Cube): CubeSet {
  const out: CubeSet = [];
  let above = 0n;
  for (const b of bits(c.mask)) {
    out.push({ mask: above | b, value: (c.value & above) | (~c.value & b) });
    above |= b;
  }
  return out;
}

export function complement(set: CubeSet): CubeSet {
  return set.reduce<CubeSet>((acc, c) => intersect(acc, complementCube(c)), FULL);
}

/** x < v over `width` bits (the bits above width ignored): one cube per set bit of v. */
function lessThan(v: bigint, widthMask: bigint): CubeSet {
  const out: CubeSet = [];
  for (const b of bits(v & widthMask)) {
    const prefix = widthMask & ~(b - 1n); // b and every bit above it, within the width
    out.push({ mask: prefix, value: (v & prefix) & ~b });
  }
  return out;
}

/** The exact set of argument values a condition accepts. */
export function conditionCubes(c: ArgCondition): CubeSet {
  const w = c.width === 32 ? U32 : U64;
  switch (c.op) {
    case "eq": return [{ mask: w, value: c.value }];
    case "ne": return complement([{ mask: w, value: c.value }]);
    case "masked_eq": return [{ mask: c.mask!, value: c.value }];
    case "masked_ne": return complement([{ mask: c.mask!, value: c.value }]);
    case "lt": return simplify(lessThan(c.value, w));
    case "ge": return complement(lessThan(c.value, w));
    case "le": return c.value === w ? FULL : simplify(lessThan(c.value + 1n, w));
    case "gt": return c.value === w ? [] : complement(lessThan(c.value + 1n, w));
  }
}

/** A box: one cube set per argument (absent = any value). The calls matching all of them. */
export type Box = Map<number, CubeSet>;
/** A union of boxes. */
export type Region = Box[];

export const EVERYTHING: Region = [new Map()];

function intersectBox(a: Box, b: Box): Box | undefined {
  const out: Box = new Map(a);
  for (const [arg, set] of b) {
    const s = out.has(arg) ? intersect(out.get(arg)!, set) : set;
    if (s.length === 0) return undefined;
    out.set(arg, s);
  }
  return out;
}

export function intersectRegions(a: Region, b: Region): Region {
  const out: Region = [];
  for (const x of a) for (const y of b) {
    const box = intersectBox(x, y);
    if (box) out.push(box);
  }
  return out;
}

/** The calls on which all conditions hold. */
export function conditionsBox(conds: readonly ArgCondition[]): Region {
  const box: Box = new Map();
  for (const c of conds) {
    const s = box.has(c.arg) ? intersect(box.get(c.arg)!, conditionCubes(c)) : conditionCubes(c);
    if (s.length === 0) return [];
    box.set(c.arg, s);
  }
  return [box];
}

/** The complement of one box, as disjoint boxes: argument i outside, the arguments before it inside. */
export function complementBox(box: Box): Region {
  const out: Region = [];
  const before: Box = new Map();
  for (const [arg, set] of [...box].sort((x, y) => x[0] - y[0])) {
    const outside = complement(set);
    if (outside.length > 0) out.push(new Map([...before, [arg, outside]]));
    before.set(arg, set);
  }
  return out;
}

/** Does `(value & mask) == cube.value` hold for this argument value? (For tests and checks.) */
export function cubeHolds(c: Cube, arg: bigint): boolean {
  return (arg & c.mask) === c.value;
}

/** The disjoint regions of a decision tree, each with its leaf. */
export function decisionRegions(d: Decision, region: Region = EVERYTHING): Array<{ region: Region; leaf: Leaf }> {
  if (region.length === 0) return [];
  if (d.kind === "leaf") return [{ region, leaf: d }];
  const inside = conditionsBox(d.conds);
  const outside = inside.length === 0 ? EVERYTHING : complementBox(inside[0]!);
  return [...decisionRegions(d.then, intersectRegions(region, inside)), ...decisionRegions(d.else, intersectRegions(region, outside))];
}

/** Do two decision trees give the same action for every call? (Exact: no sampling.) */
export function sameEffect(a: Decision, b: Decision): boolean {
  const ra = decisionRegions(a);
  const rb = decisionRegions(b);
  return ra.every((x) => rb.every((y) => sameAction(x.leaf.action, y.leaf.action) || intersectRegions(x.region, y.region).length === 0));
}
