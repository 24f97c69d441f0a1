// What every export starts from: one context's decisions, with the rules `run` adds to every
// program it installs, and the remarks every format shares (what only `run` enforces).

import { sameAction, type Action } from "../policy/actions.js";
import {
  contextDecisions, decisionFor, policyContexts, sameDecision,
  type ContextDecisions, type ContextSpec,
} from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { withRunRefusals } from "../policy/refusals.js";
import { errnoName } from "../syscalls/errno.js";
import type { Arch } from "../syscalls/index.js";
import { sameEffect } from "./regions.js";
import { UsageProblem } from "../errors.js";

export class ExportError extends UsageProblem {
  override name = "UsageError";
}

export interface ExportOptions {
  arch: Arch;
  /** The context to export; the global filter (every process) unless given. */
  context?: ContextSpec;
}

export { RUN_REFUSAL_SOURCE as STRUCTURAL_SOURCE } from "../policy/refusals.js";

/**
 * The context's decisions with the two rules `run` adds to every program it installs
 * (src/policy/refusals.ts): an exported profile never allows what `run` would refuse.
 */
export function exportDecisions(policy: Policy, opts: ExportOptions): ContextDecisions {
  return withRunRefusals(contextDecisions(policy, opts.arch, opts.context ?? { context: "global" }));
}

/** Contexts whose filter differs from the exported one: only `run` can enforce those. */
export function contextsOnlyRunEnforces(policy: Policy, cd: ContextDecisions): string[] {
  const base = contextDecisions(policy, cd.arch, cd.context);
  const differ: string[] = [];
  for (const c of policyContexts(policy)) {
    const other = contextDecisions(policy, cd.arch, c);
    const nrs = new Set([...base.named.keys(), ...other.named.keys()]);
    const same = sameAction(base.defaultDecision.action, other.defaultDecision.action) && [...nrs].every((nr) => {
      const [a, b] = [decisionFor(base, nr), decisionFor(other, nr)];
      // Most trees are alike outright; only different shapes need the exact comparison.
      return sameDecision(a, b, true) || sameEffect(a, b);
    });
    if (!same) differ.push([c.context, c.role, c.database].filter(Boolean).join("/"));
  }
  return [...new Set(differ)];
}

/** Lines every export says about itself (in its header and on stderr with --verbose). */
export function commonRemarks(policy: Policy, cd: ContextDecisions, structural = true): string[] {
  const out = [
    `context exported: ${cd.context.context}${cd.context.role ? ` role ${cd.context.role}` : ""}${cd.context.database ? ` database ${cd.context.database}` : ""}; arch ${cd.arch}`,
  ];
  if (structural) out.push("includes run's structural rules: clone with CLONE_PARENT -> EPERM, clone3 -> ENOSYS");
  const others = contextsOnlyRunEnforces(policy, cd);
  if (others.length) {
    out.push(`per-context rules are not in this profile; only pg_seccomp run enforces them (contexts that differ: ${others.slice(0, 8).join(", ")}${others.length > 8 ? ", ..." : ""})`);
  }
  out.push("no violation log: denied calls are not answered by run's supervisor");
  return out;
}

export function describeAction(a: Action): string {
  return a.kind === "error" ? `error:${errnoName(a.errno!)}` : a.kind;
}

export { sameAction };
