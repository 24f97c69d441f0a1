// What a context decides for each syscall, as a small decision tree per syscall number. The
// compiler turns these trees into BPF; the effective-filter table prints them. Stacking is
// modelled exactly: the effective decision of a context is, for every possible call, the most
// restrictive of the decisions of the filters that apply to it (later filter wins a tie).

import { sameAction, actionRank, type Action } from "./actions.js";
import type { ArgCondition } from "./entries.js";
import { PolicyError, type SourceLoc } from "./errors.js";
import { PROCESS_KINDS, PROGRAM_KINDS, resolveFilter, type ProgramKind, type ProgramParent, rulesByTier, type FilterSpec, type Policy, type ProcessKind, type ResolvedFilter } from "./policy.js";
import { allSyscalls, syscallName, type Arch } from "../syscalls/index.js";

export interface Leaf {
  kind: "leaf";
  action: Action;
  /** The filter that decided ("global", "session", "harden:namespaces"). */
  source: string;
  /** An expected, harmless denial (a preset's clone3 ENOSYS): not written to the violation log. */
  quiet?: boolean;
}

export interface Branch {
  kind: "branch";
  /** All must hold to take `then`. */
  conds: ArgCondition[];
  then: Decision;
  else: Decision;
}

export type Decision = Leaf | Branch;

/**
 * A context: which kind of process (the global filter alone, the postmaster, a client session,
 * a backend type, or a child not yet classified), and for sessions (and parallel workers, which
 * work for a session) the role and database.
 */
export type ContextKind = "global" | "session" | "unclassified" | ProcessKind | ProgramKind;

export interface ContextSpec {
  context: ContextKind;
  role?: string;
  database?: string;
}

export const CONTEXT_KINDS: readonly ContextKind[] = ["global", "session", "unclassified", ...PROCESS_KINDS, ...PROGRAM_KINDS];

export function contextLabel(c: ContextSpec): string {
  return c.context;
}

/** A stable key for a context, e.g. "session/alice/analytics", "checkpointer". */
export function contextKey(c: ContextSpec): string {
  return [c.context, c.role ?? "", c.database ?? ""].join("/").replace(/\/+$/, "");
}

/**
 * Every context a policy distinguishes: global, the postmaster, sessions (by role, by database
 * and both), each backend type, and unclassified children.
 */
export function policyContexts(policy: Policy): ContextSpec[] {
  const roles = [undefined, ...policy.roles.keys()];
  const dbs = [undefined, ...policy.databases.keys()];
  const sessions = roles.flatMap((role) => dbs.map((database) => ({ context: "session" as const, ...(role ? { role } : {}), ...(database ? { database } : {}) })));
  const workers = sessions.map((s) => ({ ...s, context: "parallel_worker" as const }));
  // A walsender with a database is told from a physical one by its database: a database with no
  // overlay of its own stands for every such database.
  const other = otherDatabaseName(policy);
  const walsenders = roles.flatMap((role) => [...policy.databases.keys(), other].map((database) => ({ context: "walsender" as const, ...(role ? { role } : {}), database })));
  const others = PROCESS_KINDS.filter((k) => k !== "parallel_worker").map((k) => ({ context: k }));
  // Programs of a parent the policy gives program lists (a program has its parent's context otherwise).
  const programs: ContextSpec[] = [];
  for (const parent of policy.programs?.keys() ?? []) {
    if (parent === "session") programs.push(...sessions.map((x) => ({ ...x, context: "session_program" as const })));
    else programs.push({ context: `${parent}_program` });
  }
  return [{ context: "global" }, ...others, ...sessions, ...workers, ...walsenders, ...programs, { context: "unclassified" }];
}

/** A database name the policy has no overlay for: it stands for every such database in policyContexts(). */
export function otherDatabaseName(policy: Policy): string {
  let name = "(other database)";
  while (policy.databases.has(name)) name = `(${name})`;
  return name;
}

function sessionFilters(policy: Policy, role: string | undefined, database: string | undefined): FilterSpec[] {
  const roleFilter = role !== undefined ? policy.roles.get(role) ?? policy.session : policy.session;
  return [roleFilter, ...databaseFilter(policy, database)];
}

function databaseFilter(policy: Policy, database: string | undefined): FilterSpec[] {
  const db = database !== undefined ? policy.databases.get(database) : undefined;
  return db ? [db] : [];
}

/**
 * The filters that apply in a context, outermost (installed first) first. The effective action
 * is the most restrictive of theirs. A child not yet classified gets every child filter at
 * once: the most restrictive of all child contexts.
 */
export function contextFilters(policy: Policy, c: ContextSpec): FilterSpec[] {
  // Hardening presets come first (outermost): their default is allow, so they never decide a
  // tie, and every context gets them.
  return [...(policy.hardening?.filters ?? []), ...policyFilters(policy, c)];
}

function policyFilters(policy: Policy, c: ContextSpec): FilterSpec[] {
  const proc = (k: ProcessKind) => policy.processes.get(k);
  switch (c.context) {
    case "global":
      return [policy.global];
    case "session":
      return [policy.global, ...sessionFilters(policy, c.role, c.database)];
    case "unclassified":
      return [
        policy.global, policy.session, ...policy.roles.values(), ...policy.databases.values(),
        // A walsender's two filters side by side: when they decide alike one is dropped
        // (contextDecisions), and the stacking order, which sizes the tree, stays as it was.
        ...[...policy.processes].filter(([k]) => k !== "postmaster").flatMap(([k, f]) => (k === "walsender" && policy.walsenderWithDatabase ? [f, policy.walsenderWithDatabase] : [f])),
        // Not the program lists: an unclassified child of the postmaster runs postgres, no program.
      ];
    case "archiver_program":
    case "startup_program":
    case "session_program": {
      // A program the server runs, after its exec: the parent's program lists (whose unset
      // lists are the parent's), or the parent's own filters when the policy has none.
      const parent = c.context.slice(0, -"_program".length) as ProgramParent;
      const own = policy.programs?.get(parent);
      if (parent === "session") return own ? [policy.global, own, ...databaseFilter(policy, c.database)] : [policy.global, ...sessionFilters(policy, c.role, c.database)];
      return own ? [policy.global, own] : policyFilters(policy, { context: parent });
    }
    case "parallel_worker": {
      // A parallel worker runs its leader's query: it gets the leader's session filters too. The
      // supervisor classifies one only with its leader's role and database (classify.ts); without
      // them this is the parallel_worker_syscall_* overlay alone, as `show --context` prints it.
      // The role and database come from its shared-memory row, which code in any backend can
      // rewrite, and no private fact of the worker's confirms them (it has no Port; its leader is
      // named by the DSM segment, as writable): so the session's own filter is stacked too, and a
      // role's overlay narrows a worker but never opens what the session denies
      // (attacks/worker-row-forge.test.ts).
      const own = proc("parallel_worker");
      const leader = c.role !== undefined || c.database !== undefined ? sessionFilters(policy, c.role, c.database) : [];
      const session = leader.length > 0 && leader[0] !== policy.session ? [policy.session] : [];
      return [policy.global, ...(own ? [own] : []), ...session, ...leader];
    }
    case "walsender": {
      // Physical (no database): replication commands only. With a database it runs SQL: a session.
      if (c.database === undefined) {
        const own = proc("walsender");
        return own ? [policy.global, own] : [policy.global];
      }
      const own = policy.walsenderWithDatabase;
      if (!own) return [policy.global, ...sessionFilters(policy, c.role, c.database)];
      return [policy.global, own, ...databaseFilter(policy, c.database)];
    }
    case "autovacuum_worker":
    case "background_worker":
    case "logical_replication_worker": {
      // They run SQL a superuser can write: the session's lists (not a role's or a database's:
      // whose role and database they work for is not known when they are classified), or their
      // own, whose unset lists are the session's.
      const own = proc(c.context);
      return [policy.global, own ?? policy.session];
    }
    default: {
      const own = proc(c.context);
      return own ? [policy.global, own] : [policy.global];
    }
  }
}

function leaf(action: Action, source: string): Leaf {
  return { kind: "leaf", action, source };
}

/** Public name of a filter for tables: a role overlay is still the session filter. */
function sourceName(f: { name: string }): string {
  return f.name.replace(/\..*$/, "");
}

/**
 * One filter's decision for one syscall: the rules of its most specific tier in precedence
 * order (most restrictive first, so the first that matches is the most restrictive that
 * matches), then, for calls none of them matches, the next tier's, and so on, then the default.
 */
export function filterDecision(f: ResolvedFilter, nr: number): Decision {
  const src = sourceName(f);
  const entry = f.rules.get(nr);
  let d: Decision = leaf(f.defaultAction, src);
  if (!entry) return d;
  // Fold from the least specific tier up, and within a tier from the least restrictive rule up.
  for (const tier of rulesByTier(entry.rules).reverse()) {
    const sorted = [...tier].sort((a, b) => actionRank(a.action) - actionRank(b.action));
    for (const r of sorted) {
      const l = r.entry.quiet ? { ...leaf(r.action, src), quiet: true } : leaf(r.action, src);
      d = r.conditions.length === 0 ? l : { kind: "branch", conds: r.conditions, then: l, else: d };
    }
  }
  return d;
}

/**
 * Work allowed for stacking one syscall's decisions, in tree nodes built. Stacking copies the
 * inner tree under every leaf of the outer one, so conditions multiply; a real policy needs a
 * few hundred nodes. Past this the result could not be compiled into the 4096 instructions a
 * program may have (unless the copies nearly all collapse, which only contrived policies do).
 */
export const MAX_STACK_NODES = 1 << 18;

class DecisionTooLarge extends Error {}

/** Argument tests in a tree (each subtree counted once per place it appears). */
export function conditionCount(d: Decision): number {
  return d.kind === "leaf" ? 0 : d.conds.length + conditionCount(d.then) + conditionCount(d.else);
}

function mapLeaves(d: Decision, f: (l: Leaf) => Decision, budget: { nodes: number }): Decision {
  if (d.kind === "leaf") return f(d);
  if (++budget.nodes > MAX_STACK_NODES) throw new DecisionTooLarge();
  return simplify({ kind: "branch", conds: d.conds, then: mapLeaves(d.then, f, budget), else: mapLeaves(d.else, f, budget) });
}

function simplify(b: Branch): Decision {
  if (sameDecision(b.then, b.else)) return b.then;
  return b;
}

/** Equal trees; with `ignoreSource`, equal in what they do (which filter decided aside). */
export function sameDecision(a: Decision, b: Decision, ignoreSource = false): boolean {
  if (a.kind === "leaf" || b.kind === "leaf") {
    return a.kind === "leaf" && b.kind === "leaf" && sameAction(a.action, b.action) && (ignoreSource || a.source === b.source);
  }
  return (
    JSON.stringify(a.conds, bigintJson) === JSON.stringify(b.conds, bigintJson) &&
    sameDecision(a.then, b.then, ignoreSource) &&
    sameDecision(a.else, b.else, ignoreSource)
  );
}

function bigintJson(_k: string, v: unknown): unknown {
  return typeof v === "bigint" ? v.toString() : v;
}

/** The stacked decision: every outcome of `outer` combined with every outcome of `inner`. */
export function stack(outer: Decision, inner: Decision, budget = { nodes: 0 }): Decision {
  return mapLeaves(
    outer,
    (o) =>
      // The later (inner) filter wins a tie, as the kernel returns the newest filter's data.
      mapLeaves(inner, (i) => (actionRank(o.action) > actionRank(i.action) ? o : i), budget),
    budget,
  );
}

/** Everything a context decides on one arch. */
export interface ContextDecisions {
  arch: Arch;
  context: ContextSpec;
  /** For syscalls in the table that no list names. */
  defaultDecision: Leaf;
  /** For numbers the arch table does not know. */
  unknownDecision: Leaf;
  /** Syscalls some list of some applicable filter names (loc: where its argument conditions are, if any). */
  named: Map<number, { name: string; decision: Decision; loc?: SourceLoc }>;
}

/** `extra`: filters installed later on top of the context's (a session's set_client_filter()). */
export function contextDecisions(policy: Policy, arch: Arch, c: ContextSpec, extra: readonly FilterSpec[] = []): ContextDecisions {
  const filters = [...contextFilters(policy, c), ...extra].map((f) => resolveFilter(f, arch));
  const stackAll = (per: (f: ResolvedFilter) => Decision) => {
    const budget = { nodes: 0 };
    const all = filters.map(per);
    // A decision that acts exactly like a later one adds nothing: the later one wins every tie
    // (stack), so dropping the earlier keeps every action and source. Overlays that inherit a
    // list with '*' give such copies, and the unclassified context stacks every filter: without
    // this their conditions would multiply.
    const kept = all.filter((d, i) => !all.slice(i + 1).some((later) => sameDecision(d, later, true)));
    return kept.reduce((acc, d) => stack(acc, d, budget));
  };
  const defaultDecision = stackAll((f) => leaf(f.defaultAction, sourceName(f))) as Leaf;
  const named = new Map<number, { name: string; decision: Decision; loc?: SourceLoc }>();
  const nrs = new Set<number>(filters.flatMap((f) => [...f.rules.keys()]));
  for (const nr of [...nrs].sort((a, b) => a - b)) {
    const name = syscallName(arch, nr)!;
    const loc = conditionsLoc(filters, nr);
    try {
      named.set(nr, { name, decision: stackAll((f) => filterDecision(f, nr)), ...(loc ? { loc } : {}) });
    } catch (e) {
      if (!(e instanceof DecisionTooLarge)) throw e;
      throw new PolicyError(
        loc,
        `the argument conditions for "${name}" in the ${contextKey(c)} context are too many to combine: ` +
          `the compiled program would exceed the kernel's limit of 4096 instructions`,
        "the filters of a context stack, so their conditions on one syscall multiply: group conditions (a range, or argN & mask == value), or put them in one filter",
      );
    }
  }
  return { arch, context: c, defaultDecision, unknownDecision: unknownLeaf(policy, defaultDecision), named };
}

/** Where a syscall's argument conditions are written: the filter with the most of them. */
function conditionsLoc(filters: readonly ResolvedFilter[], nr: number): SourceLoc | undefined {
  let best: { n: number; loc: SourceLoc } | undefined;
  for (const f of filters) {
    // Entries the filter writes itself: inherited copies are written where they came from.
    const conditional = (f.rules.get(nr)?.rules ?? []).filter((r) => r.conditions.length > 0 && !r.entry.inheritedFrom);
    if (conditional.length > (best?.n ?? 0)) best = { n: conditional.length, loc: conditional[0]!.entry.loc };
  }
  return best?.loc;
}

/**
 * Numbers the table does not know (a kernel newer than our table, or a hole). When the default
 * lets calls through (allow, log) they follow it; when it denies, they get the unknown action
 * (ENOSYS unless configured), so that glibc falls back to an older syscall instead of dying.
 */
function unknownLeaf(policy: Policy, def: Leaf): Leaf {
  if (policy.unknownAction === "default" || def.action.kind === "allow" || def.action.kind === "log") return def;
  return leaf(policy.unknownAction, "unknown");
}

/** Decision for any number on this arch (the table's numbers, named or not, and unknown ones). */
export function decisionFor(cd: ContextDecisions, nr: number): Decision {
  const n = cd.named.get(nr);
  if (n) return n.decision;
  return syscallName(cd.arch, nr) !== undefined ? cd.defaultDecision : cd.unknownDecision;
}

export { allSyscalls };
