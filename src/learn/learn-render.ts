// `pg_seccomp learn`: the output policy, in seed-compatible postgresql.conf syntax, from what was
// learned and the base. Pure.

import { formatAction, sameAction, type Action, type ActionKind } from "../policy/actions.js";
import {
  contextDecisions, contextKey, decisionFor, sameDecision, type ContextDecisions, type ContextSpec, type Decision,
} from "../policy/decision.js";
import {
  DEFAULT_ERROR_ERRNO, DEFAULT_UNKNOWN_ACTION, PROCESS_KINDS, resolveFilter, type Policy, type ProcessKind, type SyscallRule,
} from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { PolicyDraftBuilder, writePolicyText, type PolicyDraft } from "../policy/write.js";
import { hardeningValue, withoutPresets } from "../policy/harden.js";
import { expandGroup } from "../syscalls/groups.js";
import { allSyscalls, syscallNumber, type Arch } from "../syscalls/index.js";
import { addCall, groupLearned, parseContextKey, type Learned, type LearnedCall } from "./learn-record.js";

// ---------------------------------------------------------------------------------------------
// 3. The output policy

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
   * The floor (profiles/floor.conf): its allow list is allowed in every context and its kill
   * list is kept when the base has none, whatever was learned.
   */
  floor?: { allow: string[]; kill: string[] };
  /** The coverage report's lines (written into the header as comments). */
  coverage?: string[];
}

/** The contributor key of the floor's names in an overlay's allow list. */
const FLOOR_KEY = "the floor";

const RESTRICTIVE: readonly ActionKind[] = ["log", "error", "trap", "kill"];

/** An output overlay: which filter, what the base decides there, what it may use of the learned. */
interface Overlay {
  /** Output key: "postmaster", "session", "session/alice", "checkpointer". */
  key: string;
  /** Setting name with % for the list: "session_syscall_%", "session_syscall_%.alice". */
  pattern: string;
  /** The base's context for this overlay. */
  baseCtx: ContextSpec;
  description: string;
  /** Learned syscalls it allows, with the output keys that contributed them. */
  allowedLearned: Map<string, string[]>;
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

function withErrno(name: string, a: Action): string {
  return a.kind === "error" && a.errno !== undefined ? `${name}:${errnoName(a.errno)}` : name;
}

/** A base rule written back as a list entry: as written for named entries, the name for groups. */
function ruleText(name: string, r: SyscallRule): string {
  // As written (an error entry without an errno gets syscall_error_errno, which we write out).
  return r.entry.kind === "syscall" ? r.entry.text : withErrno(name, r.action);
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/** A learned call's comment line (without the #): `pg_seccomp learn --merge` reads these. */
function seenLine(name: string, c: LearnedCall, suffix = ""): string {
  return `  ${name}: first seen ${c.first.time} in ${c.first.context} (pid ${c.first.pid}: ${c.first.process}), ${plural(c.count, "call")}${suffix}`;
}

/** A list setting's value: the entries, each once, in order. */
function listValue(entries: readonly string[]): string {
  return [...new Set(entries)].join(", ");
}

/** What was learned, over all contexts, and which syscall names the output keeps. */
interface LearnedView {
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

function viewLearned(input: RenderInput): LearnedView {
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
interface BaseView {
  base: Policy | undefined;
  arch: Arch;
  errorErrno: number;
  denyDefault: Action;
  globalDefault: Action;
  decisions(c: ContextSpec): ContextDecisions | undefined;
  globalDecisions: ContextDecisions | undefined;
  baseGlobalRules: ReturnType<typeof resolveFilter> | undefined;
}

function viewBase(base: Policy | undefined, arch: Arch): BaseView {
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

/** The header's comment lines (without the #): where the file came from, and what it allows and why. */
function headerLines(input: RenderInput): string[] {
  const { arch } = input;
  const perRole = input.perRole ?? false;
  const now = new Date().toISOString();
  const baseName = input.base ? input.baseLabel : "none";
  return [
    "pg_seccomp learned policy",
    "",
    `written:   ${now} by pg_seccomp learn`,
    `since:     ${input.since && input.since < input.roundStart ? input.since : input.roundStart} (the first round's start)`,
    `round:     ${input.roundStart} to ${input.roundEnd}`,
    `rounds:    ${input.rounds}`,
    ...(input.merged ? [`merged:    ${input.merged}`] : []),
    `server:    ${input.server}`,
    `arch:      ${arch} (syscall names are ${arch}'s: check this file with pg_seccomp check --arch ${arch})`,
    `workload:  ${input.workload ? input.workload.replace(/\s*\n\s*/g, "; ") : "(none: the server ran until stopped)"}`,
    `base:      ${baseName}`,
    `per-role:  ${perRole ? "yes" : "no"}`,
    ...(input.coverage ? ["", ...input.coverage] : []),
    "",
    "How it was learned: the server ran under the base with every action other than allow",
    "turned into log. What the base allows stayed allowed, decided in the kernel, and was never",
    "reported; every other call ran as it would without a filter and was reported with the",
    "context of the process that made it (postmaster, a session of a role in a database, a",
    "backend type, or a process not yet classified).",
    "",
    "What this file allows:",
    "- global_syscall_allow: the base's allow list plus every syscall learned in any context.",
    "  The global filter applies to every process and an overlay can only restrict it, so it",
    "  must hold everything any process used.",
    "- an overlay for each context in which calls were recorded" + (input.allContexts ? " (and, with --all-contexts, for every other one)" : "") + ":",
    "  it allows what the base allows in that context (those calls were never reported, so they",
    "  cannot be left out) plus the learned syscalls that context used. A learned syscall is",
    "  therefore allowed only where it was used; elsewhere the base's decision stands (its default,",
    "  or the list it was in: such entries are listed in the overlay's own lists after '*').",
    ...(input.allContexts
      ? ["- contexts in which nothing was recorded get an overlay with the base's allow list only."]
      : ["- a context in which nothing was recorded has no overlay: it gets the global lists."]),
    ...(perRole
      ? [
          "- --per-role: each role seen gets its own session overlay (session_syscall_*.<role>); sessions",
          "  of other roles get the session overlay, which allows none of the roles' learned syscalls.",
        ]
      : []),
    "- a process not yet classified (between fork and setting its title) runs under every child",
    "  overlay at once, so what such processes used is allowed in every overlay but the postmaster's.",
    "- a parallel worker runs under its own overlay and its leader's session overlay, so what",
    "  parallel workers used is allowed in the session overlays too.",
    "- learned syscalls are removed from the base's log, error, trap and kill lists (the server used",
    "  them: denying them would break it); a learned syscall in one of the base's groups is allowed",
    "  by name, which beats the group.",
    "- no database overlays are learned (sessions are learned per role, with --per-role); the base's",
    "  database settings are kept, minus restrictions of what sessions used. Argument conditions",
    "  that the base sets in its overlays (not its global lists) are not carried over.",
    "",
    "Lines '#   name: first seen ...' record what was learned; pg_seccomp learn --merge reads them.",
  ];
}

/** The base's errno and unknown-number settings when not the defaults, then the hardening presets. */
function baseSettings(d: PolicyDraftBuilder, base: Policy | undefined): void {
  let any = false;
  if (base && base.errorErrno !== DEFAULT_ERROR_ERRNO) (any = true), d.set("syscall_error_errno", errnoName(base.errorErrno));
  const unknown = base?.unknownAction;
  if (unknown === "default") (any = true), d.set("syscall_unknown_action", "default");
  else if (unknown && !sameAction(unknown, DEFAULT_UNKNOWN_ACTION)) (any = true), d.set("syscall_unknown_action", formatAction(unknown));
  if (any) d.blank();
  // Hardening presets: the base's choice, or all of them when the base says nothing.
  d.comment(
    "Hardening presets (docs/policy.md, \"Hardening presets\"): no new namespaces, sockets only for",
    "AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, personality locked, no setuid/setgid files, no",
    "TIOCSTI, in every process, on top of the lists below (the stricter answer wins).",
    ...(base?.hardening
      ? ["They were in force while learning (the base's): a call they denied was reported as a warning."]
      : ["The base had none, so they were not in force while learning: check the run's output and test."]),
    "To drop one write e.g. 'all, !address_families'; to drop them all, write '' (check then warns).",
  );
  d.set("syscall_harden", base?.hardening ? hardeningValue(base.hardening.presets) : "all").blank();
}

/** The global section: every learned call, the base's allow list plus the kept names, its deny lists minus them, the floor's kill list. */
function globalSection(d: PolicyDraftBuilder, input: RenderInput, lv: LearnedView, bv: BaseView): void {
  const { arch } = input;
  const { anywhere, usedIn, floorNames, keptNames, unknownNumbers } = lv;
  d.comment("-".repeat(94), "global: every process of the server", "");
  d.comment(`learned (any context): ${plural(anywhere.size, "syscall")}`);
  for (const name of [...anywhere.keys()].sort()) {
    d.comment(seenLine(name, anywhere.get(name)!, `; used in ${usedIn.get(name)!.sort().join(", ")}`));
  }
  if (unknownNumbers.length > 0) {
    d.comment(
      `${unknownNumbers.join(", ")}: not in pg_seccomp's ${arch} table (a kernel newer than the table), so not listable;`,
      `  such numbers get syscall_unknown_action (ENOSYS by default: glibc falls back to an older call)`,
    );
  }
  d.set("global_syscall_default", formatAction(bv.globalDefault, bv.errorErrno));
  const baseGlobal = bv.base?.global.entries ?? [];
  const unconditionalAllowed = new Set(baseGlobal.filter((e) => e.action.kind === "allow" && e.kind === "syscall" && e.conditions.length === 0).map((e) => e.name));
  const globalAllow = [
    ...baseGlobal.filter((e) => e.action.kind === "allow").map((e) => e.text),
    ...[...keptNames].filter((n) => !unconditionalAllowed.has(n)).sort(),
  ];
  if (floorNames.size > 0) {
    d.comment(`kept whatever was learned: the floor (profiles/floor.conf, ${plural(floorNames.size, "syscall")}: calls glibc makes on paths a learning run`);
    d.comment("  rarely reaches, such as brk and madvise from malloc/free, gettid/tgkill from abort(), sync_file_range in recovery)");
  }
  d.set("global_syscall_allow", listValue(globalAllow));
  for (const action of RESTRICTIVE) {
    const entries = baseGlobal.filter((e) => e.action.kind === action);
    if (entries.length === 0) continue;
    const removed = entries.filter((e) => e.kind === "syscall" && keptNames.has(e.name));
    const kept = entries.filter((e) => !removed.includes(e));
    const inGroups = new Map<string, string[]>();
    for (const g of kept.filter((e) => e.kind === "group")) {
      for (const name of expandGroup(g.name, arch).syscalls) {
        if (keptNames.has(name)) inGroups.set(name, [...(inGroups.get(name) ?? []), g.name]);
      }
    }
    d.blank();
    if (removed.length > 0) {
      d.comment(`removed from the base's ${action} list, because the server used them (learned; ${action === "log" ? "they are allowed now" : "denying them would break it"}):`);
      for (const e of removed) d.comment(`  ${e.text} (used in ${lv.whereUsed(e.name)})`);
    }
    if (inGroups.size > 0) {
      d.comment(`learned, and members of groups in this list: allowed by name above (a name beats a group):`);
      for (const [name, gs] of [...inGroups].sort()) d.comment(`  ${name} (${gs.join(", ")}; used in ${lv.whereUsed(name)})`);
    }
    d.set(`global_syscall_${action}`, listValue(kept.map((e) => e.text)));
  }
  // The floor's kill list, when the base has none (--base none, or a base without one).
  const floorKill = (input.floor?.kill ?? []).filter((k) => !(k.startsWith("@") ? false : keptNames.has(k)));
  if (!baseGlobal.some((e) => e.action.kind === "kill") && floorKill.length > 0) {
    d.blank().comment("the floor's kill list (profiles/floor.conf), kept whatever the base: dangerous groups, killed; a name in an", "allow list beats group membership, so nothing learned is killed");
    d.set("global_syscall_kill", listValue(floorKill));
  }
}

/** Which overlays to write (a context with recorded calls, a base that differs there, or --all-contexts), and what each may allow of the learned. */
function planOverlays(input: RenderInput, lv: LearnedView, bv: BaseView): Overlay[] {
  const { base, arch } = input;
  const perRole = input.perRole ?? false;
  const { grouped, floorNames } = lv;
  const contribute = (into: Map<string, string[]>, key: string) => {
    if (key === FLOOR_KEY) {
      for (const name of floorNames) into.set(name, [...(into.get(name) ?? []), key]);
      return;
    }
    for (const name of lv.learnedAt(key).keys()) if (lv.known(name)) into.set(name, [...(into.get(name) ?? []), key]);
  };
  const overlays: Overlay[] = [];
  const recordedKeys = new Set([...grouped.keys()].filter((k) => k !== "unclassified" && grouped.get(k)!.size > 0));
  const baseDiffers = (c: ContextSpec) => {
    const d = bv.decisions(c);
    const g = bv.globalDecisions;
    if (!d || !g) return false;
    if (!sameDecision(d.defaultDecision, g.defaultDecision, true)) return true;
    return allSyscalls(arch).some((s) => !sameDecision(decisionFor(d, s.nr), decisionFor(g, s.nr), true));
  };
  const roles = new Set<string>(base ? [...base.roles.keys()] : []);
  for (const k of recordedKeys) {
    const { context, role } = parseContextKey(k);
    if (context === "session" && role) roles.add(role);
  }
  const want = (k: string, c: ContextSpec) => recordedKeys.has(k) || input.allContexts === true || baseDiffers(c);

  const sessionKeys = (role?: string) => [...(role ? [`session/${role}`] : []), "session", "parallel_worker", "unclassified", FLOOR_KEY];
  for (const kind of ["postmaster", "session", ...PROCESS_KINDS.filter((k) => k !== "postmaster")] as const) {
    const c: ContextSpec = { context: kind };
    if (kind === "session") {
      const anyRole = [...roles].some((r) => want(`session/${r}`, { context: "session", role: r }));
      if (!want("session", c) && !anyRole) continue;
      const allowedLearned = new Map<string, string[]>();
      for (const k of sessionKeys()) contribute(allowedLearned, k);
      overlays.push({ key: "session", pattern: "session_syscall_%", baseCtx: c, description: perRole ? "client backends of roles without an overlay of their own" : "client backends (every role)", allowedLearned });
      for (const role of [...roles].sort()) {
        const rc: ContextSpec = { context: "session", role };
        if (!base?.roles.has(role) && !recordedKeys.has(`session/${role}`)) continue;
        const al = new Map<string, string[]>();
        for (const k of sessionKeys(role)) contribute(al, k);
        overlays.push({ key: `session/${role}`, pattern: `session_syscall_%.${role}`, baseCtx: rc, description: `client backends of role ${role}`, allowedLearned: al });
      }
      continue;
    }
    if (!want(kind, c)) continue;
    const allowedLearned = new Map<string, string[]>();
    contribute(allowedLearned, kind);
    if (kind !== "postmaster") contribute(allowedLearned, "unclassified");
    contribute(allowedLearned, FLOOR_KEY);
    overlays.push({ key: kind, pattern: `${kind}_syscall_%`, baseCtx: c, description: PROCESS_DESCRIPTIONS[kind], allowedLearned });
  }
  return overlays;
}

interface OverlayLists {
  overlayDefault: Action;
  allow: string[];
  lists: Record<ActionKind, string[]>;
}

/** An overlay's default and lists: the learned it may allow, what the base allows there, and what the base denies there that the global lists no longer do. */
function overlayLists(o: Overlay, lv: LearnedView, bv: BaseView): OverlayLists {
  const cd = bv.decisions(o.baseCtx);
  const overlayDefault = cd ? cd.defaultDecision.action : bv.denyDefault;
  const allow: string[] = [...o.allowedLearned.keys()].sort();
  const lists: Record<ActionKind, string[]> = { allow: [], log: [], error: [], trap: [], kill: [] };
  for (const s of allSyscalls(bv.arch)) {
    if (o.allowedLearned.has(s.name)) continue;
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

/** One section per overlay: what was learned there, what else it allows and why, and its lists. */
function overlaySections(d: PolicyDraftBuilder, input: RenderInput, lv: LearnedView, bv: BaseView, overlays: readonly Overlay[]): void {
  const perRole = input.perRole ?? false;
  const computed = overlays.map((o) => ({ o, ...overlayLists(o, lv, bv) }));
  const sessionLists = computed.find((c) => c.o.key === "session")?.lists;
  for (const { o, overlayDefault, allow, lists } of computed) {
    const setting = (a: string) => o.pattern.replace("%", a);
    const own = lv.learnedAt(o.key);
    const others = [...o.allowedLearned].filter(([, keys]) => !keys.includes(o.key) && !keys.includes(FLOOR_KEY));
    d.blank().comment("-".repeat(94), `${o.key}: ${o.description}`, "");
    d.comment(`learned in ${o.key}: ${plural(own.size, "syscall")}`);
    for (const name of [...own.keys()].sort()) d.comment(seenLine(name, own.get(name)!));
    for (const [name, keys] of others.sort(([a], [b]) => a.localeCompare(b))) {
      const why = keys.includes("unclassified")
        ? "processes not yet classified used it; they run under every child overlay"
        : keys.includes("parallel_worker")
          ? "parallel workers used it; they run under their leader's session overlay"
          : perRole
            ? "learned in sessions of any role (a round written without --per-role, or a role whose name cannot be a setting)"
            : "learned in session: sessions are not learned per role without --per-role";
      d.comment(`also allowed here: ${name} (${why})`);
    }
    if (lv.floorNames.size > 0) d.comment(`also allowed here: the floor (profiles/floor.conf, ${plural(lv.floorNames.size, "syscall")}), in every context`);
    d.comment(`the rest of the allow list is what the base allows here (never reported while learning).`);
    d.set(setting("default"), formatAction(overlayDefault, bv.errorErrno));
    const learnedHere = [...o.allowedLearned.keys()].sort();
    d.set(setting("allow"), listValue([...learnedHere, ...allow.slice(learnedHere.length).sort()]));
    for (const action of RESTRICTIVE) {
      if (lists[action].length === 0) {
        // A role's unset list falls back to the session's: say '*' (the global list) explicitly.
        if (o.key.startsWith("session/") && (sessionLists?.[action].length ?? 0) > 0) d.set(setting(action), "*");
        continue;
      }
      d.comment(`denied here as the base denies them (learned elsewhere, or the base's own rule for this context):`);
      d.set(setting(action), listValue(["*", ...lists[action]]));
    }
  }
}

/**
 * The base's database overlays, kept: they stack on the session's. Their own restrictions of
 * syscalls sessions used are dropped (the server used them), and what sessions learned is
 * allowed in them (we do not learn per database).
 */
function databaseSections(d: PolicyDraftBuilder, lv: LearnedView, bv: BaseView): void {
  const sessionLearned = new Set<string>(lv.floorNames);
  for (const [key, calls] of lv.grouped) {
    if (["session", "parallel_worker", "unclassified"].includes(parseContextKey(key).context)) for (const n of calls.keys()) if (lv.known(n)) sessionLearned.add(n);
  }
  for (const [db, f] of bv.base?.databases ?? []) {
    d.blank().comment("-".repeat(94), `database ${db}: the base's settings for sessions in database ${db} (on top of the session overlays)`, "");
    d.set(`database_syscall_default.${db}`, formatAction(f.defaultAction, bv.errorErrno));
    for (const action of ["allow", ...RESTRICTIVE] as ActionKind[]) {
      const inherits = f.entries.some((e) => e.action.kind === action && e.inheritedFrom !== undefined);
      let own = f.entries.filter((e) => e.action.kind === action && e.inheritedFrom === undefined);
      const extra: string[] = [];
      if (action === "allow") {
        if (!inherits) extra.push(...[...sessionLearned].filter((n) => !own.some((e) => e.kind === "syscall" && e.name === n && e.conditions.length === 0)).sort());
      } else {
        const removed = own.filter((e) => e.kind === "syscall" && sessionLearned.has(e.name));
        if (removed.length > 0) d.comment(`removed from the base's ${action} list for ${db}, because sessions used them: ${removed.map((e) => e.text).join(", ")}`);
        own = own.filter((e) => !removed.includes(e));
      }
      // An unset list is '*' (the global list): only write what differs from that.
      if (inherits && own.length === 0 && extra.length === 0) continue;
      if (!inherits && own.length === 0 && extra.length === 0 && action !== "allow") continue;
      d.set(`database_syscall_${action}.${db}`, listValue([...(inherits ? ["*"] : []), ...own.map((e) => e.text), ...extra]));
    }
  }
}

/** What processes not yet classified used (no overlay of their own: allowed in every child overlay). */
function unclassifiedSection(d: PolicyDraftBuilder, lv: LearnedView): void {
  const uncl = lv.learnedAt("unclassified");
  if (uncl.size === 0) return;
  d.blank().comment(
    "-".repeat(94), "unclassified: processes between fork and setting their title", "",
    `learned in unclassified: ${plural(uncl.size, "syscall")} (no overlay of its own: allowed in every child overlay above)`,
    ...[...uncl.keys()].sort().map((name) => seenLine(name, uncl.get(name)!)),
  );
}

/** The output policy as settings with their comments. */
export function learnedPolicyDraft(input: RenderInput): PolicyDraft {
  const lv = viewLearned(input);
  const bv = viewBase(input.base, input.arch);
  const d = new PolicyDraftBuilder();
  baseSettings(d, input.base);
  globalSection(d, input, lv, bv);
  overlaySections(d, input, lv, bv, planOverlays(input, lv, bv));
  databaseSections(d, lv, bv);
  unclassifiedSection(d, lv);
  return d.draft(headerLines(input));
}

/** The output policy: seed-compatible postgresql.conf syntax, loadable with loadPolicyFile. */
export function renderLearnedPolicy(input: RenderInput): string {
  return writePolicyText(learnedPolicyDraft(input));
}
