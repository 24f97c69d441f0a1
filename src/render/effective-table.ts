// The effective filter in the shape of the seed's pg_get_seccomp_filter(): one row per syscall
// that some list names, per context, plus one <default> row (syscallnum -1) per context.
// `show`, the SQL function and `status` all build their tables here.

import { formatAction } from "../policy/actions.js";
import { formatCondition } from "../policy/entries.js";
import { contextDecisions, contextLabel, type ContextSpec, type Decision } from "../policy/decision.js";
import type { FilterSpec, Policy } from "../policy/policy.js";
import type { Arch } from "../syscalls/index.js";

export interface FilterRow {
  syscall: string;
  syscallnum: number;
  filter_action: string;
  context: string;
}

export const FILTER_COLUMNS = ["syscall", "syscallnum", "filter_action", "context"] as const;

/**
 * Rows for the given contexts, ordered as `order by 4,1` orders them in a database with an
 * en_US collation (the seed's table): by context, then by syscall name compared on letters and
 * digits first, so `<default>` sorts as "default" and `set_robust_list` after `setitimer`.
 */
export function effectiveFilterRows(policy: Policy, arch: Arch, contexts: readonly ContextSpec[], opts: { client?: FilterSpec } = {}): FilterRow[] {
  // A session's set_client_filter() filter is stacked on its session context (rows `client->X`).
  const decided = contexts.map((c) => contextDecisions(policy, arch, c, opts.client && c.context === "session" ? [opts.client] : []));
  // Every context lists the same syscalls: all those named in any shown context.
  const names = new Map<number, string>();
  for (const cd of decided) for (const [nr, { name }] of cd.named) names.set(nr, name);
  const rows: FilterRow[] = [];
  for (const cd of decided) {
    const context = contextLabel(cd.context);
    rows.push({ syscall: "<default>", syscallnum: -1, filter_action: describeDecision(cd.defaultDecision, policy.errorErrno), context });
    for (const [nr, name] of names) {
      const d = cd.named.get(nr)?.decision ?? cd.defaultDecision;
      rows.push({ syscall: name, syscallnum: nr, filter_action: describeDecision(d, policy.errorErrno), context });
    }
  }
  return rows.sort((a, b) => collate(a.context, b.context) || collate(a.syscall, b.syscall));
}

/** `global->allow`; with conditions `session->allow if arg0 == 1; else global->log`. */
export function describeDecision(d: Decision, defaultErrno: number): string {
  if (d.kind === "leaf") return `${d.source}->${formatAction(d.action, defaultErrno)}`;
  const parts: string[] = [];
  let cur: Decision = d;
  while (cur.kind === "branch") {
    const then = describeDecision(cur.then, defaultErrno);
    parts.push(`${cur.then.kind === "branch" ? `(${then})` : then} if ${cur.conds.map(formatCondition).join(" && ")}`);
    cur = cur.else;
  }
  parts.push(`else ${describeDecision(cur, defaultErrno)}`);
  return parts.join("; ");
}

function collationKey(s: string): string {
  return s.toLowerCase().replace(/[^a-z0-9]/g, "");
}

/** A stand-in for glibc's en_US.UTF-8 collation on these names: punctuation counts last. */
export function collate(a: string, b: string): number {
  const ka = collationKey(a);
  const kb = collationKey(b);
  if (ka !== kb) return ka < kb ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}
