// The effective filter in the shape of the seed's pg_get_seccomp_filter(): one row per syscall
// that some list names, per context, plus one <default> row (syscallnum -1) per context.
// `show`, the SQL function and `status` all build their tables here. A policy in pgseccomp mode
// gets the table as CrunchyData/pgseccomp's seccomp_filter() writes it (docs/policy.md,
// "Differences from pgseccomp").

import { psqlTable } from "./format.js";
import { ACTION_KINDS, formatAction, sameAction } from "../policy/actions.js";
import { formatCondition } from "../policy/entries.js";
import { contextDecisions, contextFilters, contextLabel, type ContextDecisions, type ContextSpec, type Decision, type Leaf } from "../policy/decision.js";
import { resolveFilter, type FilterSpec, type Policy } from "../policy/policy.js";
import { syscallName, type Arch } from "../syscalls/index.js";

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
  const pgseccomp = policy.compat === "pgseccomp";
  const decided = contexts.map((c) => {
    // A session's set_client_filter() filter is stacked on its session context (rows `client->X`).
    const extra = opts.client && c.context === "session" ? [opts.client] : [];
    // pgseccomp installs no session filter when the session's lists are all the global ones and
    // its default is the global default: the session's rows are then the global filter's.
    const fastPath = pgseccomp && sharesGlobalFilter(policy, c);
    const decideAs: ContextSpec = fastPath ? { context: "global" } : c;
    const decisions = contextDecisions(policy, arch, decideAs, extra);
    const cd = fastPath ? asEmptySessionOverlay(decisions) : decisions;
    return { context: c, cd, ...(pgseccomp ? { own: pgseccompNames(policy, arch, decideAs, extra) } : {}) };
  });
  // Seed names: every context lists the same syscalls, all those named in any shown context.
  // pgseccomp: a context lists the syscalls its own filters name with an action other than
  // that filter's default (the global context: the global filter's alone).
  const union = new Map<number, string>();
  for (const { cd } of decided) for (const [nr, { name }] of cd.named) union.set(nr, name);
  const rows: FilterRow[] = [];
  for (const { context: c, cd, own } of decided) {
    const context = contextLabel(c);
    rows.push({ syscall: "<default>", syscallnum: -1, filter_action: describeDecision(cd.defaultDecision, policy.errorErrno), context });
    for (const [nr, name] of own ?? union) {
      const d = cd.named.get(nr)?.decision ?? cd.defaultDecision;
      rows.push({ syscall: name, syscallnum: nr, filter_action: describeDecision(d, policy.errorErrno), context });
    }
  }
  // pgseccomp's table is read with `order by 4,1`; "<default>" sorts first there (its "<" comes
  // before letters), where the seed's en_US table sorted it as "default".
  const first = (r: FilterRow) => (pgseccomp && r.syscall === "<default>" ? 0 : 1);
  return rows.sort((a, b) => collate(a.context, b.context) || first(a) - first(b) || collate(a.syscall, b.syscall));
}

/**
 * pgseccomp's fast path: a session (of a role) whose every list is the global list (inherited,
 * '*' or not set) and whose default is the global default, with no database overlay, gets no
 * filter of its own. A list written out with the same syscalls is a filter of its own, as there.
 */
export function sharesGlobalFilter(policy: Policy, c: ContextSpec): boolean {
  if (c.context !== "session" || (c.database !== undefined && policy.databases.has(c.database))) return false;
  const f = (c.role !== undefined ? policy.roles.get(c.role) : undefined) ?? policy.session;
  return sameAction(f.defaultAction, policy.global.defaultAction) && ACTION_KINDS.every((a) => f.globalLists?.has(a));
}

/**
 * pgseccomp's table for a session on the fast path: it still overlays the session's filter
 * record, left empty with default `allow` (0, its lowest action), on the global rows, and an
 * overlay wins ties. So every global row (and the global default) that is `allow` reads
 * `session->allow`; every other row keeps its global label. Only the labels change: no filter is
 * installed either way.
 */
function asEmptySessionOverlay(cd: ContextDecisions): ContextDecisions {
  const relabelLeaf = (d: Leaf): Leaf => (d.action.kind === "allow" ? { ...d, source: "session" } : d);
  const relabel = (d: Decision): Decision => (d.kind === "leaf" ? relabelLeaf(d) : { ...d, then: relabel(d.then), else: relabel(d.else) });
  const named = new Map([...cd.named].map(([nr, v]) => [nr, { ...v, decision: relabel(v.decision) }] as const));
  return { ...cd, defaultDecision: relabelLeaf(cd.defaultDecision), named };
}

/** The syscalls a context's filters name with an action other than that filter's default. */
function pgseccompNames(policy: Policy, arch: Arch, c: ContextSpec, extra: readonly FilterSpec[]): Map<number, string> {
  const names = new Map<number, string>();
  for (const f of [...contextFilters(policy, c), ...extra]) {
    for (const [nr, { rules }] of resolveFilter(f, arch).rules) {
      if (rules.some((r) => r.conditions.length > 0 || !sameAction(r.action, f.defaultAction))) names.set(nr, syscallName(arch, nr) ?? `#${nr}`);
    }
  }
  return new Map([...names].sort((a, b) => a[0] - b[0]));
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

/** Every role/database combination the policy tells apart (undefined: the session's own). */
export function sessionVariants(policy: Policy): Array<{ role?: string; database?: string }> {
  const roles = [undefined, ...policy.roles.keys()];
  const dbs = [undefined, ...policy.databases.keys()];
  return roles.flatMap((role) => dbs.map((database) => ({ ...(role ? { role } : {}), ...(database ? { database } : {}) })));
}

/** One list entry of a policy and where it was written: `check --json` and `show --sources`. */
export interface EntrySource {
  filter: string;
  action: string;
  entry: string;
  /** file:line of the entry as written. */
  from: string;
}

/**
 * Every entry a filter holds of its own (not those an overlay inherits from the global list), with
 * the file and line it was written at: an included file's line for what a '*' kept.
 */
export function entrySources(policy: Policy): EntrySource[] {
  const filters = [policy.global, policy.session, ...policy.roles.values(), ...policy.databases.values(), ...policy.processes.values()];
  return filters.flatMap((f) =>
    f.entries.filter((e) => !e.inheritedFrom).map((e) => ({ filter: f.name, action: formatAction(e.action, policy.errorErrno), entry: e.text, from: `${e.loc.file}:${e.loc.line}` })),
  );
}

/**
 * For `show --sources`: where each row's entries were written, file:line (the default row: the
 * default setting's line), for the given contexts, keyed as the rows are by context label.
 */
export function rowSources(policy: Policy, arch: Arch, contexts: readonly ContextSpec[], rows: readonly FilterRow[]): string[] {
  const byLabel = new Map(contexts.map((c) => [contextLabel(c), contextFilters(policy, c)]));
  const at = (l: { file: string; line: number }) => `${l.file}:${l.line}`;
  return rows.map((r) => {
    const filters = byLabel.get(r.context) ?? [];
    if (r.syscallnum === -1) {
      const d = [...filters].reverse().find((f) => f.defaultLoc)?.defaultLoc;
      return d ? at(d) : "";
    }
    const places = filters.flatMap((f) => resolveFilter(f, arch).rules.get(r.syscallnum)?.rules.map((x) => at(x.entry.loc)) ?? []);
    return [...new Set(places)].join(", ");
  });
}

/**
 * A table sized to its content: a cell of `column` longer than `max` (a long conditional action)
 * is replaced by a footnote mark, and the text goes below the table, so one such row does not
 * pad every other row to its width.
 */
export function footnoteLongCells<T extends object>(rows: readonly T[], column: keyof T & string, max = 60): { rows: T[]; footnotes: string[] } {
  const footnotes: string[] = [];
  const out = rows.map((r) => {
    const v = String(r[column]);
    if (v.length <= max) return r;
    footnotes.push(v);
    return { ...r, [column]: `[${footnotes.length}] see below` };
  });
  return { rows: out, footnotes: footnotes.map((f, i) => `[${i + 1}] ${f}`) };
}

/**
 * The effective-filter table as a person reads it (show, demo): psql's layout, a long
 * conditional action as a footnote below it (footnoteLongCells).
 */
export function filterTableText(columns: readonly string[], rows: readonly object[]): string {
  const { rows: shown, footnotes } = footnoteLongCells(rows as Array<Record<string, unknown>>, "filter_action");
  return psqlTable(columns as never, shown as never) + footnotes.map((f) => f + "\n").join("");
}
