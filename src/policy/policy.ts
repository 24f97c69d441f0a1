// A policy: the settings of a seed-compatible policy file, interpreted. Arch-independent:
// syscall names are checked to exist on some supported arch here, and resolved to numbers
// for one arch by resolveFilter(). The types are in model.ts, the building in build.ts.

import { PolicyError } from "./errors.js";
import type { Action } from "./actions.js";
import type { ArgCondition } from "./entries.js";
import { readConf, readConfText } from "./conf.js";
import { fileSystemSource, type PolicySource } from "./source.js";
import { resolveSyscall, type Arch } from "../syscalls/index.js";
import { expandGroup } from "../syscalls/groups.js";
import { buildPolicy } from "./build.js";
import type { FilterSpec, Policy, PolicyEntry } from "./model.js";

export * from "./model.js";
export { buildPolicy, checkEntries, dropDefaultActionEntries, MAX_CONDITIONAL_ENTRIES } from "./build.js";

export function loadPolicyFile(path: string, source: PolicySource = fileSystemSource): Policy {
  const conf = readConf(path, source);
  return { ...buildPolicy(conf.settings, conf.files), includePlaces: conf.includePlaces };
}

export function parsePolicyText(text: string, name = "<policy>"): Policy {
  const conf = readConfText(text, name);
  return { ...buildPolicy(conf.settings, conf.files), includePlaces: conf.includePlaces };
}

/** One syscall's rules in one filter, for one arch. */
export interface SyscallRule {
  action: Action;
  conditions: ArgCondition[];
  entry: PolicyEntry;
  /**
   * How specific the entry is: 3 named explicitly, 2 named in a list inherited with '*' (or
   * from the filter an overlay falls back to), 1 a group named explicitly, 0 an inherited group.
   */
  tier: number;
}

export interface ResolvedFilter {
  name: string;
  defaultAction: Action;
  /** Only syscalls some entry names; rules of every tier, the most specific tier first. */
  rules: Map<number, { name: string; rules: SyscallRule[] }>;
}

/**
 * The rules of a filter for one arch. When a syscall is reached by more than one entry, the
 * most specific kind of entry decides the calls it matches: an explicit name beats one
 * inherited with '*', which beats a group. A call that matches no entry of a tier (they all
 * have argument conditions it fails) is decided by the next tier, as if those entries were
 * absent, and by the default when no tier matches. Within a tier every matching rule counts
 * (the most restrictive wins).
 */
export function resolveFilter(f: FilterSpec, arch: Arch): ResolvedFilter {
  const found = new Map<number, { name: string; rules: SyscallRule[] }>();
  const add = (nr: number, name: string, rule: SyscallRule) => {
    const cur = found.get(nr);
    if (!cur) found.set(nr, { name, rules: [rule] });
    else {
      if (rule.tier > cur.rules[0]!.tier) cur.name = name;
      cur.rules.push(rule);
    }
  };
  for (const e of f.entries) {
    const tier = (e.kind === "group" ? 0 : 2) + (e.inheritedFrom ? 0 : 1);
    if (e.kind === "group") {
      for (const name of expandGroup(e.name, arch).syscalls) {
        const r = resolveSyscall(arch, name);
        if (r.ok) add(r.nr, name, { action: e.action, conditions: [], entry: e, tier });
      }
      continue;
    }
    const r = resolveSyscall(arch, e.name);
    if (!r.ok && e.preset) continue; // e.g. chmod on aarch64: the preset covers fchmodat there
    if (!r.ok) {
      throw new PolicyError(e.loc, r.message, `remove "${e.name}" from the policy for ${arch}, or write the ${arch} equivalent`);
    }
    add(r.nr, e.name, { action: e.action, conditions: e.conditions, entry: e, tier });
  }
  for (const v of found.values()) {
    v.rules.sort((a, b) => b.tier - a.tier);
    // A tier with an unconditional rule matches every call: the tiers below it never decide.
    const top = v.rules.find((r) => r.conditions.length === 0)?.tier;
    if (top !== undefined) v.rules = v.rules.filter((r) => r.tier >= top);
  }
  return { name: f.name, defaultAction: f.defaultAction, rules: found };
}

/** The rules of one syscall grouped by tier, the most specific tier first. */
export function rulesByTier(rules: readonly SyscallRule[]): SyscallRule[][] {
  const tiers: SyscallRule[][] = [];
  for (const r of rules) {
    const last = tiers[tiers.length - 1];
    if (last && last[0]!.tier === r.tier) last.push(r);
    else tiers.push([r]);
  }
  return tiers;
}
