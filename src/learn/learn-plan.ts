// `pg_seccomp learn`: what the output policy holds, before it is written (learn-render.ts writes
// it): the learned calls and the base as the output needs them, which overlays to write, and
// each overlay's default and lists. Pure.

import { sameAction, type Action, type ActionKind } from "../policy/actions.js";
import {
  contextDecisions, contextKey, decisionFor, sameDecision, type ContextDecisions, type ContextSpec, type Decision,
} from "../policy/decision.js";
import { DEFAULT_ERROR_ERRNO, PROCESS_KINDS, resolveFilter, type Policy, type ProcessKind, type SyscallRule } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { withoutPresets } from "../policy/harden.js";
import { allSyscalls, syscallNumber, type Arch } from "../syscalls/index.js";
import { expandGroup } from "../syscalls/groups.js";
import type { AnalyzeResult } from "../analyze/analyze.js";
import { addCall, groupLearned, parseContextKey, type Learned, type LearnedCall } from "./learn-record.js";

export interface RenderInput {
  /** Everything learned (previous rounds and this one). */
  learned: Learned;
  /** The base policy; undefined for --base none. */
  base: Policy | undefined;
  /** How the header names the base ("/path/x.conf (bundled starter profile)", "none"). */
  baseLabel: string;
  arch: Arch;
  /** `postgres --version` and the binary's path. */
  server: string;
  workload?: string;
  perRole?: boolean;
  /** Write an overlay for every context, also those in which nothing was recorded. */
  allContexts?: boolean;
  /** Rounds so far, this one included. */
  rounds: number;
  /** This round's start and end (ISO). */
  roundStart: string;
  roundEnd: string;
  /** Files merged in (--merge). */
  merged?: string;
  /** When the first round started (from the merged file). */
  since?: string;
  /**
   * The floor (profiles/floor.conf, parseFloor): its allow list is allowed in every context, its
   * kill list is the composition's, its tags and reasons are the evidence of its calls.
   */
  floor?: { allow: readonly string[]; kill: readonly string[]; tagOf?: ReadonlyMap<string, string>; reasons?: ReadonlyMap<string, string>; harden?: string };
  /**
   * pg_seccomp analyze of the server's files: what it finds reachable and was neither learned,
   * in the floor nor allowed by the base is logged in every context (composeProfile).
   */
  analysis?: AnalyzeResult;
  /**
   * The DBA's --deny-per-context names: denied in each context that ran while learning and did
   * not use them. Nothing else narrows a context below the global lists but the base's own lists.
   */
  denyPerContext?: readonly string[];
  /** Contexts that ran while learning (recorded calls, or seen in pg_stat_activity). */
  ran?: readonly string[];
  /** The coverage report's lines (written into the header as comments). */
  coverage?: string[];
}

/** The contributor key of the floor's names in an overlay's allow list. */
export const FLOOR_KEY = "the floor";

export const RESTRICTIVE: readonly ActionKind[] = ["log", "error", "trap", "kill"];

/** An output overlay: which filter, what the base decides there, what it may use of the learned. */
export interface Overlay {
  /** Output key: "postmaster", "session", "session/alice", "checkpointer". */
  key: string;
  /** Setting name with % for the list: "session_syscall_%", "session_syscall_%.alice". */
  pattern: string;
  /** The base's context for this overlay. */
  baseCtx: ContextSpec;
  description: string;
  /** Learned (and floor) syscalls it allows, with the output keys that contributed them. */
  allowedLearned: Map<string, string[]>;
  /** The DBA's --deny-per-context names this context did not use: denied here. */
  denyNamed: string[];
  /** Written only for denyNamed: the base decides here as it does globally. */
  denyOnly: boolean;
}

const PROCESS_DESCRIPTIONS: Record<ProcessKind, string> = {
  postmaster: "the postmaster only (its children never run under this overlay)",
  autovacuum_launcher: "the autovacuum launcher",
  autovacuum_worker: "autovacuum workers",
  background_writer: "the background writer",
  checkpointer: "the checkpointer",
  walwriter: "the WAL writer",
  walsender: "WAL senders",
  walreceiver: "the WAL receiver",
  startup: "the startup process (recovery)",
  archiver: "the archiver (and its archive_command)",
  logical_replication_launcher: "the logical replication launcher",
  logical_replication_worker: "logical replication workers",
  parallel_worker: "parallel workers (they also run under their leader's session overlay)",
  background_worker: "other background workers (extensions' bgw_type)",
  logger: "the logging collector",
  stats_collector: "the statistics collector (PostgreSQL 14)",
  walsummarizer: "the WAL summarizer (PostgreSQL 17+)",
  slotsync_worker: "the slot sync worker (PostgreSQL 17+)",
  io_worker: "io workers (PostgreSQL 18+)",
};

export function withErrno(name: string, a: Action): string {
  return a.kind === "error" && a.errno !== undefined ? `${name}:${errnoName(a.errno)}` : name;
}

/** A base rule written back as a list entry: as written for named entries, the name for groups. */
export function ruleText(name: string, r: SyscallRule): string {
  // As written (an error entry without an errno gets syscall_error_errno, which we write out).
  return r.entry.kind === "syscall" ? r.entry.text : withErrno(name, r.action);
}

/** What was learned, over all contexts, and which syscall names the output keeps. */
export interface LearnedView {
  /** Learned calls by output key ("session", "session/alice", "checkpointer", ...). */
  grouped: Learned;
  /** Every learned syscall over all contexts, with the keys that used it. */
  anywhere: Map<string, LearnedCall>;
  usedIn: Map<string, string[]>;
  /** The floor's names: allowed everywhere, like a syscall learned in every context. */
  floorNames: Set<string>;
  /** Learned names in the arch's table, and the floor's: removed from every deny list. */
  keptNames: Set<string>;
  /** Learned numbers the table does not name (a kernel newer than the table). */
  unknownNumbers: string[];
  known(name: string): boolean;
  /** "session, the floor": where a kept name was used, for comments. */
  whereUsed(name: string): string;
  learnedAt(key: string): Map<string, LearnedCall>;
}

export function viewLearned(input: RenderInput): LearnedView {
  const grouped = groupLearned(input.learned, input.perRole ?? false);
  const known = (name: string) => syscallNumber(input.arch, name) !== undefined;
  const anywhere = new Map<string, LearnedCall>();
  const usedIn = new Map<string, string[]>();
  for (const [key, calls] of grouped) {
    for (const [name, c] of calls) {
      addCall(anywhere, name, c);
      usedIn.set(name, [...(usedIn.get(name) ?? []), key]);
    }
  }
  const learnedNames = new Set([...anywhere.keys()].filter(known));
  const floorNames = new Set((input.floor?.allow ?? []).filter(known));
  return {
    grouped,
    anywhere,
    usedIn,
    floorNames,
    keptNames: new Set([...learnedNames, ...floorNames]),
    unknownNumbers: [...anywhere.keys()].filter((n) => !known(n)).sort(),
    known,
    whereUsed: (name) => [...(usedIn.get(name) ?? []), ...(floorNames.has(name) ? ["the floor"] : [])].sort().join(", "),
    learnedAt: (key) => grouped.get(key) ?? new Map<string, LearnedCall>(),
  };
}

/** The base as the output needs it: its errno, defaults, and per-context decisions without its presets. */
export interface BaseView {
  base: Policy | undefined;
  arch: Arch;
  errorErrno: number;
  denyDefault: Action;
  globalDefault: Action;
  decisions(c: ContextSpec): ContextDecisions | undefined;
  globalDecisions: ContextDecisions | undefined;
  baseGlobalRules: ReturnType<typeof resolveFilter> | undefined;
}

export function viewBase(base: Policy | undefined, arch: Arch): BaseView {
  const errorErrno = base?.errorErrno ?? DEFAULT_ERROR_ERRNO;
  const denyDefault: Action = { kind: "error", errno: errorErrno };
  const cache = new Map<string, ContextDecisions>();
  const decisions = (c: ContextSpec): ContextDecisions | undefined => {
    if (!base) return undefined;
    const k = contextKey(c);
    let d = cache.get(k);
    // The base's own lists: its presets are written as one line of their own, not into overlays.
    if (!d) cache.set(k, (d = contextDecisions(withoutPresets(base), arch, c)));
    return d;
  };
  return {
    base,
    arch,
    errorErrno,
    denyDefault,
    globalDefault: base?.global.defaultAction ?? denyDefault,
    decisions,
    globalDecisions: decisions({ context: "global" }),
    baseGlobalRules: base ? resolveFilter(base.global, arch) : undefined,
  };
}

/** The syscalls a base's own filter for `c` denies by name or group (not inherited with '*'). */
function namedDeniedByBase(base: Policy | undefined, c: ContextSpec, arch: Arch): Set<string> {
  const out = new Set<string>();
  if (!base) return out;
  const filters =
    c.context === "session"
      ? [base.session, ...(c.role !== undefined && base.roles.has(c.role) ? [base.roles.get(c.role)!] : [])]
      : c.context === "global" ? [] : [base.processes.get(c.context as ProcessKind)].filter((f) => f !== undefined);
  for (const f of filters) {
    for (const e of f.entries) {
      if (e.action.kind === "allow" || e.inheritedFrom !== undefined) continue;
      if (e.kind === "syscall") out.add(e.name);
      else if (e.kind === "group") for (const n of expandGroup(e.name, arch).syscalls) out.add(n);
    }
  }
  return out;
}

/**
 * Which overlays to write, and what each allows of the learned. A context is narrowed below the
 * global lists only where the base's own lists do it, or for the DBA's --deny-per-context names
 * in a context that ran and did not use them: never because a call was not seen there (what a
 * test did not show is not evidence that a context never needs it). So every context allows
 * everything learned anywhere, the floor, and logs what is reachable only statically.
 */
export function planOverlays(input: RenderInput, lv: LearnedView, bv: BaseView): Overlay[] {
  const { base, arch } = input;
  const perRole = input.perRole ?? false;
  const { grouped } = lv;
  const ran = new Set(input.ran ?? []);
  for (const k of grouped.keys()) ran.add(parseContextKey(k).context);
  ran.add("postmaster");
  const deny = [...new Set(input.denyPerContext ?? [])];
  const baseDiffers = (c: ContextSpec) => {
    const d = bv.decisions(c);
    const g = bv.globalDecisions;
    if (!d || !g) return false;
    if (!sameDecision(d.defaultDecision, g.defaultDecision, true)) return true;
    return allSyscalls(arch).some((s) => !sameDecision(decisionFor(d, s.nr), decisionFor(g, s.nr), true));
  };
  // What the processes under an overlay used: its own key, processes not yet classified (they
  // run under every child overlay) and, for sessions, parallel workers (their leader's overlay).
  const usedUnder = (keys: readonly string[]) => {
    const used = new Set<string>();
    for (const k of keys) for (const n of lv.learnedAt(k).keys()) used.add(n);
    return used;
  };
  const plan = (key: string, pattern: string, c: ContextSpec, description: string, keys: readonly string[], forced: boolean): Overlay | undefined => {
    const used = usedUnder(keys);
    const denyNamed = ran.has(c.context) ? deny.filter((n) => !used.has(n)) : [];
    const differs = baseDiffers(c);
    if (!forced && !differs && denyNamed.length === 0) return undefined;
    const baseNamed = namedDeniedByBase(base, c, arch);
    const allowedLearned = new Map<string, string[]>();
    for (const name of lv.keptNames) {
      if (denyNamed.includes(name) || (baseNamed.has(name) && !used.has(name))) continue;
      allowedLearned.set(name, [...(lv.usedIn.get(name) ?? []), ...(lv.floorNames.has(name) ? [FLOOR_KEY] : [])]);
    }
    return { key, pattern, baseCtx: c, description, allowedLearned, denyNamed, denyOnly: !forced && !differs };
  };
  const overlays: Overlay[] = [];
  const roles = new Set<string>(base ? [...base.roles.keys()] : []);
  if (perRole) {
    for (const k of grouped.keys()) {
      const { context, role } = parseContextKey(k);
      if (context === "session" && role) roles.add(role);
    }
  }
  const all = input.allContexts === true;
  for (const kind of ["postmaster", "session", ...PROCESS_KINDS.filter((k) => k !== "postmaster")] as const) {
    if (kind === "session") {
      const o = plan("session", "session_syscall_%", { context: "session" }, perRole ? "client backends of roles without an overlay of their own" : "client backends (every role)", ["session", "parallel_worker", "unclassified"], all);
      const roleOverlays: Overlay[] = [];
      for (const role of [...roles].sort()) {
        const ro = plan(`session/${role}`, `session_syscall_%.${role}`, { context: "session", role }, `client backends of role ${role}`, [`session/${role}`, "parallel_worker", "unclassified"], all || base?.roles.has(role) === true);
        if (ro) roleOverlays.push(ro);
      }
      // A role's overlay falls back to the session's: write the session's whenever a role has one.
      const so = o ?? (roleOverlays.length > 0 ? plan("session", "session_syscall_%", { context: "session" }, "client backends (every role)", ["session", "parallel_worker", "unclassified"], true) : undefined);
      if (so) overlays.push(so, ...roleOverlays);
      continue;
    }
    const o = plan(kind, `${kind}_syscall_%`, { context: kind }, PROCESS_DESCRIPTIONS[kind], kind === "postmaster" ? [kind] : [kind, "unclassified"], all);
    if (o) overlays.push(o);
  }
  return overlays;
}

export interface OverlayLists {
  overlayDefault: Action;
  allow: string[];
  lists: Record<ActionKind, string[]>;
}

/** An overlay's default and lists: the learned it may allow, what the base allows there, and what the base denies there that the global lists no longer do. */
export function overlayLists(o: Overlay, lv: LearnedView, bv: BaseView, staticLogged: ReadonlySet<string> = new Set()): OverlayLists {
  const cd = bv.decisions(o.baseCtx);
  const overlayDefault = cd ? cd.defaultDecision.action : bv.denyDefault;
  const allow: string[] = [...o.allowedLearned.keys()].sort();
  const lists: Record<ActionKind, string[]> = { allow: [], log: [], error: [], terminate: [], trap: [], kill: [] };
  const baseNamed = namedDeniedByBase(bv.base, o.baseCtx, bv.arch);
  for (const s of allSyscalls(bv.arch)) {
    if (o.allowedLearned.has(s.name)) continue;
    if (o.denyNamed.includes(s.name)) {
      lists.error.push(s.name);
      continue;
    }
    // Reachable only statically: logged by the global list, which the overlay inherits ('*'),
    // unless the base denies it here by name.
    if (staticLogged.has(s.name) && !baseNamed.has(s.name)) continue;
    const d: Decision = cd ? decisionFor(cd, s.nr) : { kind: "leaf", action: bv.denyDefault, source: "global" };
    if (d.kind === "leaf") {
      if (d.action.kind === "allow") {
        if (overlayDefault.kind !== "allow") allow.push(s.name);
        continue;
      }
      // Denied here by the base. The overlay's default and the lists it inherits from the
      // global filter say so, unless the global list it was in lost it (learned elsewhere) or
      // the base decided it in an overlay of its own: then it is listed here.
      const g = bv.globalDecisions ? decisionFor(bv.globalDecisions, s.nr) : undefined;
      const fromGlobal = g !== undefined && sameDecision(g, d, true);
      if ((lv.keptNames.has(s.name) || !fromGlobal) && !sameAction(d.action, overlayDefault)) lists[d.action.kind].push(withErrno(s.name, d.action));
      continue;
    }
    // Decided by argument conditions: the base's global rules for it, as written.
    for (const r of bv.baseGlobalRules?.rules.get(s.nr)?.rules ?? []) {
      if (r.action.kind === "allow") allow.push(ruleText(s.name, r));
      else if (lv.keptNames.has(s.name)) lists[r.action.kind].push(ruleText(s.name, r));
    }
  }
  return { overlayDefault, allow, lists };
}
