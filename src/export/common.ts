// What every export starts from: one context's decisions, with the rules `run` adds to every
// program it installs, and the remarks every format shares (what only `run` enforces).

import { hasErrno, sameAction, type Action } from "../policy/actions.js";
import {
  contextDecisions, decisionFor, policyContexts, sameDecision,
  type ContextDecisions, type ContextSpec, type Decision,
} from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { withRunRefusals } from "../compile/refusals.js";
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

export { RUN_REFUSAL_SOURCE as STRUCTURAL_SOURCE } from "../compile/refusals.js";

/**
 * The context's decisions with the two rules `run` adds to every program it installs
 * (src/compile/refusals.ts): an exported profile never allows what `run` would refuse.
 */
export function exportDecisions(policy: Policy, opts: ExportOptions): ContextDecisions {
  const cd = withRunRefusals(contextDecisions(policy, opts.arch, opts.context ?? { context: "global" }));
  return {
    ...cd,
    defaultDecision: terminateAsError(cd.defaultDecision) as typeof cd.defaultDecision,
    unknownDecision: terminateAsError(cd.unknownDecision) as typeof cd.unknownDecision,
    named: new Map([...cd.named].map(([nr, x]) => [nr, { ...x, decision: terminateAsError(x.decision) }])),
  };
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
  if (terminates(contextDecisions(policy, cd.arch, cd.context))) out.push("terminate becomes error: the calls fail with their errno, and nothing ends the session (only run's supervisor does)");
  return out;
}

export function describeAction(a: Action): string {
  return hasErrno(a.kind) ? `${a.kind}:${errnoName(a.errno!)}` : a.kind;
}

/** terminate as a profile without run's supervisor has it: the errno alone (nothing ends the session). */
function terminateAsError(d: Decision): Decision {
  if (d.kind === "branch") return { ...d, then: terminateAsError(d.then), else: terminateAsError(d.else) };
  return d.action.kind === "terminate" ? { ...d, action: { kind: "error", errno: d.action.errno! } } : d;
}

/** Does the context terminate sessions anywhere (a remark: the export only fails those calls)? */
function terminates(cd: ContextDecisions): boolean {
  const any = (d: Decision): boolean => (d.kind === "leaf" ? d.action.kind === "terminate" : any(d.then) || any(d.else));
  return any(cd.defaultDecision) || any(cd.unknownDecision) || [...cd.named.values()].some((x) => any(x.decision));
}

export { sameAction };
