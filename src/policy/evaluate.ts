// A direct reference evaluation of a policy on one seccomp_data, written from the semantics
// (most restrictive matching rule of each filter, else its default; most restrictive filter
// wins, the later one on a tie) without the decision trees or BPF the compiler uses. Property
// tests check that the compiled program agrees with it.

import { moreRestrictive, type Action } from "./actions.js";
import type { ArgCondition } from "./entries.js";
import { contextFilters, type ContextSpec } from "./decision.js";
import { resolveFilter, rulesByTier, type Policy, type ResolvedFilter } from "./policy.js";
import { AUDIT_ARCH, X32_SYSCALL_BIT, type SeccompData } from "../seccomp/index.js";
import { syscallName, type Arch } from "../syscalls/index.js";

export function conditionHolds(c: ArgCondition, args: readonly bigint[]): boolean {
  let v = args[c.arg] ?? 0n;
  if (c.width === 32) v &= 0xffffffffn;
  switch (c.op) {
    case "eq": return v === c.value;
    case "ne": return v !== c.value;
    case "lt": return v < c.value;
    case "le": return v <= c.value;
    case "gt": return v > c.value;
    case "ge": return v >= c.value;
    case "masked_eq": return (v & c.mask!) === c.value;
    case "masked_ne": return (v & c.mask!) !== c.value;
  }
}

/** Most restrictive; on a tie the later one (as stacked filters and later entries do). */
function pick(actions: readonly Action[]): Action {
  return actions.reduce(moreRestrictive);
}

/** The most specific tier with a matching rule decides (its most restrictive match); else the default. */
function filterAction(f: ResolvedFilter, nr: number, args: readonly bigint[]): Action {
  for (const tier of rulesByTier(f.rules.get(nr)?.rules ?? [])) {
    const matching = tier.filter((r) => r.conditions.every((c) => conditionHolds(c, args))).map((r) => r.action);
    if (matching.length) return pick(matching);
  }
  return f.defaultAction;
}

export function evaluatePolicy(policy: Policy, arch: Arch, ctx: ContextSpec, data: SeccompData): Action {
  if (data.arch >>> 0 !== AUDIT_ARCH[arch] || (arch === "x86_64" && data.nr >>> 0 >= X32_SYSCALL_BIT)) return { kind: "kill" };
  const filters = contextFilters(policy, ctx).map((f) => resolveFilter(f, arch));
  if (syscallName(arch, data.nr >>> 0) === undefined) {
    const def = pick(filters.map((f) => f.defaultAction));
    if (policy.unknownAction === "default" || def.kind === "allow" || def.kind === "log") return def;
    return policy.unknownAction;
  }
  return pick(filters.map((f) => filterAction(f, data.nr >>> 0, data.args)));
}
