// `pg_seccomp learn`: the seed's learning procedure (steps 1-8), done by the supervisor instead
// of auditd. The server runs under a *learning* policy made from a base policy: whatever the
// base allows stays allowed, decided in the kernel; every other call is answered `log`, so it
// runs exactly as it would without a filter and is reported to the supervisor with the context
// of the process that made it. At the end we write a seed-format policy: the base plus what was
// learned, with each learned syscall allowed only in the contexts that used it.
//
// Pure parts (learning policy, recording, rendering, merging) are exported for unit tests; the
// run itself (learn()) drives runServer().

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { formatAction, sameAction, type Action, type ActionKind } from "../policy/actions.js";
import { contextDecisions, contextKey, decisionFor, sameDecision, type ContextDecisions, type ContextKind, type ContextSpec, type Decision } from "../policy/decision.js";
import {
  DEFAULT_ERROR_ERRNO, DEFAULT_UNKNOWN_ACTION, loadPolicyFile, PROCESS_KINDS, resolveFilter, type FilterSpec, type Policy, type PolicyEntry, type ProcessKind, type SyscallRule,
} from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { hardeningValue, withoutPresets } from "../policy/harden.js";
import { expandGroup } from "../syscalls/groups.js";
import { allSyscalls, hostArch, syscallNumber, type Arch } from "../syscalls/index.js";
import { dataDirOf, LaunchError, starterProfile, type RunResult } from "../launcher/run.js";
import { floorLists, hotBaseText, readFloor, readHotCalls } from "./base.js";
import { formatCoverage, runProcedure, serverEndpoint, type Coverage, type ProcedureResult } from "./procedure.js";
import type { ViolationEvent } from "../host/violation-event.js";

// ---------------------------------------------------------------------------------------------
// 1. The learning policy

function learningAction(a: Action): Action {
  return a.kind === "allow" ? { kind: "allow" } : { kind: "log" };
}

function learningFilter(f: FilterSpec): FilterSpec {
  return {
    ...f,
    defaultAction: learningAction(f.defaultAction),
    entries: f.entries.map((e): PolicyEntry => {
      const { errno: _errno, ...rest } = e;
      return { ...rest, action: learningAction(e.action) };
    }),
  };
}

/**
 * The policy a learning run installs. Every filter of the base (global, session, roles,
 * databases, backend types) keeps its shape, lists and argument conditions; only the actions
 * change: allow stays allow, every other action (defaults, log/error/trap/kill lists) becomes
 * log. So for every call in every context the learning decision is allow exactly where the
 * base's is allow (stacking picks the most restrictive, and log is the only thing above allow
 * left), and log everywhere else. Unknown syscall numbers follow the default (log when the base
 * denies). Calls every context allows are decided in the kernel (free after the first call);
 * logged ones go to the supervisor, which lets them run and reports them. Without a base
 * (`--base none`) everything is logged. The base's hardening presets stay in force: they deny
 * in the kernel as they will under the learned policy, so the server learned is the server that
 * will run (a call they deny is reported as a warning, not learned).
 */
export function learningPolicy(base: Policy | undefined): Policy {
  if (!base) {
    const global: FilterSpec = { name: "global", defaultAction: { kind: "log" }, entries: [] };
    return {
      enabled: true, errorErrno: DEFAULT_ERROR_ERRNO, unknownAction: "default",
      global, session: { ...global, name: "session" },
      roles: new Map(), databases: new Map(), processes: new Map(), notes: [], files: [],
    };
  }
  const mapAll = <K>(m: Map<K, FilterSpec>) => new Map([...m].map(([k, f]) => [k, learningFilter(f)] as const));
  return {
    enabled: true,
    errorErrno: base.errorErrno,
    unknownAction: "default",
    global: learningFilter(base.global),
    session: learningFilter(base.session),
    roles: mapAll(base.roles),
    databases: mapAll(base.databases),
    processes: mapAll(base.processes),
    ...(base.hardening ? { hardening: base.hardening } : {}),
    notes: [],
    files: [...base.files],
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Recording

export interface FirstSeen {
  /** ISO time. */
  time: string;
  pid: number;
  /** The process title (or an exec'd program's command line). */
  process: string;
  /** The full context key where it was first seen: "postmaster", "session/alice/sales". */
  context: string;
}

export interface LearnedCall {
  count: number;
  first: FirstSeen;
}

/**
 * What was learned: context key -> syscall name -> first seen and count. Keys from a live run
 * are full keys (contextKey: "session/alice/sales", "checkpointer"); keys read back from a
 * previous output are as coarse as that output was written ("session", or "session/alice" with
 * --per-role).
 */
export type Learned = Map<string, Map<string, LearnedCall>>;

export function eventContextKey(e: Pick<ViolationEvent, "context" | "role" | "database">): string {
  return contextKey({
    context: e.context as ContextKind,
    ...(e.role !== undefined ? { role: e.role } : {}),
    ...(e.database !== undefined ? { database: e.database } : {}),
  });
}

export function parseContextKey(key: string): { context: string; role?: string; database?: string } {
  const [context = "", role, database] = key.split("/");
  return { context, ...(role ? { role } : {}), ...(database ? { database } : {}) };
}

function cleanTitle(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

/** Records one event; true when (context, syscall) was not known before. */
export function recordEvent(learned: Learned, e: ViolationEvent): boolean {
  const key = eventContextKey(e);
  let calls = learned.get(key);
  if (!calls) learned.set(key, (calls = new Map()));
  const cur = calls.get(e.syscall);
  if (cur) {
    cur.count++;
    return false;
  }
  calls.set(e.syscall, { count: 1, first: { time: e.time, pid: e.pid, process: cleanTitle(e.process), context: key } });
  return true;
}

function addCall(into: Map<string, LearnedCall>, name: string, c: LearnedCall): void {
  const cur = into.get(name);
  if (!cur) into.set(name, { count: c.count, first: { ...c.first } });
  else {
    cur.count += c.count;
    if (c.first.time < cur.first.time) cur.first = { ...c.first };
  }
}

/** The union of two learned sets: counts add up, the earlier first sighting wins. */
export function mergeLearned(a: Learned, b: Learned): Learned {
  const out: Learned = new Map();
  for (const src of [a, b]) {
    for (const [key, calls] of src) {
      let into = out.get(key);
      if (!into) out.set(key, (into = new Map()));
      for (const [name, c] of calls) addCall(into, name, c);
    }
  }
  return out;
}

/** Role names that can be written in a setting name (session_syscall_allow.<role>). */
const SETTING_ROLE = /^[a-z_][a-z0-9_$]*$/;

/**
 * The key a learned context is written under: the context kind, and for sessions with
 * --per-role the role (when its name can be a setting suffix). Parallel workers are written as
 * one context: what they use is allowed in every session overlay (they run under their
 * leader's).
 */
export function outputKey(key: string, perRole: boolean): string {
  const { context, role } = parseContextKey(key);
  if (context === "session" && perRole && role !== undefined && SETTING_ROLE.test(role)) return `session/${role}`;
  return context;
}

/** The learned set at the granularity of the output. */
export function groupLearned(learned: Learned, perRole: boolean): Learned {
  const out: Learned = new Map();
  for (const [key, calls] of learned) {
    const k = outputKey(key, perRole);
    let into = out.get(k);
    if (!into) out.set(k, (into = new Map()));
    for (const [name, c] of calls) addCall(into, name, c);
  }
  return out;
}

export interface NewCall {
  context: string;
  syscall: string;
  first: FirstSeen;
}

/**
 * What this round learned that the previous rounds had not, at the output's granularity: a
 * syscall is new in a context unless a previous round saw it there (a previous round written
 * without roles covers every role's session).
 */
export function newCalls(previous: Learned, round: Learned, perRole: boolean): NewCall[] {
  const prev = groupLearned(previous, perRole);
  const cur = groupLearned(round, perRole);
  const out: NewCall[] = [];
  for (const [key, calls] of cur) {
    for (const [name, c] of calls) {
      const coarse = parseContextKey(key).context;
      if (prev.get(key)?.has(name) || prev.get(coarse)?.has(name)) continue;
      out.push({ context: key, syscall: name, first: c.first });
    }
  }
  return out.sort((a, b) => a.context.localeCompare(b.context) || a.syscall.localeCompare(b.syscall));
}

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

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function seenLine(name: string, c: LearnedCall, suffix = ""): string {
  return `#   ${name}: first seen ${c.first.time} in ${c.first.context} (pid ${c.first.pid}: ${c.first.process}), ${plural(c.count, "call")}${suffix}`;
}

function listValue(entries: readonly string[]): string {
  return `'${[...new Set(entries)].join(", ").replace(/'/g, "''")}'`;
}

/** The output policy: seed-compatible postgresql.conf syntax, loadable with loadPolicyFile. */
export function renderLearnedPolicy(input: RenderInput): string {
  const { base, arch } = input;
  const perRole = input.perRole ?? false;
  const grouped = groupLearned(input.learned, perRole);
  const known = (name: string) => syscallNumber(arch, name) !== undefined;

  // Every learned syscall, over all contexts: what the global allow list gains.
  const anywhere = new Map<string, LearnedCall>();
  const usedIn = new Map<string, string[]>();
  for (const [key, calls] of grouped) {
    for (const [name, c] of calls) {
      addCall(anywhere, name, c);
      usedIn.set(name, [...(usedIn.get(name) ?? []), key]);
    }
  }
  const learnedNames = new Set([...anywhere.keys()].filter(known));
  // The floor's names: allowed everywhere, like a syscall learned in every context.
  const floorNames = new Set((input.floor?.allow ?? []).filter(known));
  const keptNames = new Set([...learnedNames, ...floorNames]);
  const whereUsed = (name: string) => [...(usedIn.get(name) ?? []), ...(floorNames.has(name) ? ["the floor"] : [])].sort().join(", ");
  const unknownNumbers = [...anywhere.keys()].filter((n) => !known(n)).sort();

  const errorErrno = base?.errorErrno ?? DEFAULT_ERROR_ERRNO;
  const denyDefault: Action = { kind: "error", errno: errorErrno };
  const globalDefault = base?.global.defaultAction ?? denyDefault;
  const decisionsCache = new Map<string, ContextDecisions>();
  const decisions = (c: ContextSpec): ContextDecisions | undefined => {
    if (!base) return undefined;
    const k = contextKey(c);
    let d = decisionsCache.get(k);
    // The base's own lists: its presets are written as one line of their own, not into overlays.
    if (!d) decisionsCache.set(k, (d = contextDecisions(withoutPresets(base), arch, c)));
    return d;
  };
  const globalDecisions = decisions({ context: "global" });
  const baseGlobalRules = base ? resolveFilter(base.global, arch) : undefined;

  const L: string[] = [];
  const now = new Date().toISOString();
  const baseName = base ? input.baseLabel : "none";
  L.push(
    "# pg_seccomp learned policy",
    "#",
    `# written:   ${now} by pg_seccomp learn`,
    `# since:     ${input.since && input.since < input.roundStart ? input.since : input.roundStart} (the first round's start)`,
    `# round:     ${input.roundStart} to ${input.roundEnd}`,
    `# rounds:    ${input.rounds}`,
    ...(input.merged ? [`# merged:    ${input.merged}`] : []),
    `# server:    ${input.server}`,
    `# arch:      ${arch} (syscall names are ${arch}'s: check this file with pg_seccomp check --arch ${arch})`,
    `# workload:  ${input.workload ? input.workload.replace(/\s*\n\s*/g, "; ") : "(none: the server ran until stopped)"}`,
    `# base:      ${baseName}`,
    `# per-role:  ${perRole ? "yes" : "no"}`,
    ...(input.coverage ? ["#", ...input.coverage.map((l) => `# ${l}`)] : []),
    "#",
    "# How it was learned: the server ran under the base with every action other than allow",
    "# turned into log. What the base allows stayed allowed, decided in the kernel, and was never",
    "# reported; every other call ran as it would without a filter and was reported with the",
    "# context of the process that made it (postmaster, a session of a role in a database, a",
    "# backend type, or a process not yet classified).",
    "#",
    "# What this file allows:",
    "# - global_syscall_allow: the base's allow list plus every syscall learned in any context.",
    "#   The global filter applies to every process and an overlay can only restrict it, so it",
    "#   must hold everything any process used.",
    "# - an overlay for each context in which calls were recorded" + (input.allContexts ? " (and, with --all-contexts, for every other one)" : "") + ":",
    "#   it allows what the base allows in that context (those calls were never reported, so they",
    "#   cannot be left out) plus the learned syscalls that context used. A learned syscall is",
    "#   therefore allowed only where it was used; elsewhere the base's decision stands (its default,",
    "#   or the list it was in: such entries are listed in the overlay's own lists after '*').",
    ...(input.allContexts
      ? ["# - contexts in which nothing was recorded get an overlay with the base's allow list only."]
      : ["# - a context in which nothing was recorded has no overlay: it gets the global lists."]),
    ...(perRole
      ? [
          "# - --per-role: each role seen gets its own session overlay (session_syscall_*.<role>); sessions",
          "#   of other roles get the session overlay, which allows none of the roles' learned syscalls.",
        ]
      : []),
    "# - a process not yet classified (between fork and setting its title) runs under every child",
    "#   overlay at once, so what such processes used is allowed in every overlay but the postmaster's.",
    "# - a parallel worker runs under its own overlay and its leader's session overlay, so what",
    "#   parallel workers used is allowed in the session overlays too.",
    "# - learned syscalls are removed from the base's log, error, trap and kill lists (the server used",
    "#   them: denying them would break it); a learned syscall in one of the base's groups is allowed",
    "#   by name, which beats the group.",
    "# - no database overlays are learned (sessions are learned per role, with --per-role); the base's",
    "#   database settings are kept, minus restrictions of what sessions used. Argument conditions",
    "#   that the base sets in its overlays (not its global lists) are not carried over.",
    "#",
    "# Lines '#   name: first seen ...' record what was learned; pg_seccomp learn --merge reads them.",
    "",
  );

  if (base && base.errorErrno !== DEFAULT_ERROR_ERRNO) L.push(`syscall_error_errno = '${errnoName(base.errorErrno)}'`);
  const unknown = base?.unknownAction;
  if (unknown === "default") L.push("syscall_unknown_action = 'default'");
  else if (unknown && !sameAction(unknown, DEFAULT_UNKNOWN_ACTION)) L.push(`syscall_unknown_action = '${formatAction(unknown)}'`);
  if (L[L.length - 1] !== "") L.push("");
  // Hardening presets: the base's choice, or all of them when the base says nothing.
  L.push(
    "# Hardening presets (docs/policy.md, \"Hardening presets\"): no new namespaces, sockets only for",
    "# AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, personality locked, no setuid/setgid files, no",
    "# TIOCSTI, in every process, on top of the lists below (the stricter answer wins).",
    ...(base?.hardening
      ? ["# They were in force while learning (the base's): a call they denied was reported as a warning."]
      : ["# The base had none, so they were not in force while learning: check the run's output and test."]),
    "# To drop one write e.g. 'all, !address_families'; to drop them all, write '' (check then warns).",
    `syscall_harden = '${base?.hardening ? hardeningValue(base.hardening.presets) : "all"}'`,
    "",
  );

  // ---- global
  L.push("# " + "-".repeat(94), "# global: every process of the server", "#");
  L.push(`# learned (any context): ${plural(anywhere.size, "syscall")}`);
  for (const name of [...anywhere.keys()].sort()) {
    L.push(seenLine(name, anywhere.get(name)!, `; used in ${usedIn.get(name)!.sort().join(", ")}`));
  }
  if (unknownNumbers.length > 0) {
    L.push(
      `# ${unknownNumbers.join(", ")}: not in pg_seccomp's ${arch} table (a kernel newer than the table), so not listable;`,
      `#   such numbers get syscall_unknown_action (ENOSYS by default: glibc falls back to an older call)`,
    );
  }
  L.push(`global_syscall_default = '${formatAction(globalDefault, errorErrno)}'`);
  const baseGlobal = base?.global.entries ?? [];
  const unconditionalAllowed = new Set(baseGlobal.filter((e) => e.action.kind === "allow" && e.kind === "syscall" && e.conditions.length === 0).map((e) => e.name));
  const globalAllow = [
    ...baseGlobal.filter((e) => e.action.kind === "allow").map((e) => e.text),
    ...[...keptNames].filter((n) => !unconditionalAllowed.has(n)).sort(),
  ];
  if (floorNames.size > 0) {
    L.push(`# kept whatever was learned: the floor (profiles/floor.conf, ${plural(floorNames.size, "syscall")}: calls glibc makes on paths a learning run`);
    L.push("#   rarely reaches, such as brk and madvise from malloc/free, gettid/tgkill from abort(), sync_file_range in recovery)");
  }
  L.push(`global_syscall_allow = ${listValue(globalAllow)}`);
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
    L.push("");
    if (removed.length > 0) {
      L.push(`# removed from the base's ${action} list, because the server used them (learned; ${action === "log" ? "they are allowed now" : "denying them would break it"}):`);
      for (const e of removed) L.push(`#   ${e.text} (used in ${whereUsed(e.name)})`);
    }
    if (inGroups.size > 0) {
      L.push(`# learned, and members of groups in this list: allowed by name above (a name beats a group):`);
      for (const [name, gs] of [...inGroups].sort()) L.push(`#   ${name} (${gs.join(", ")}; used in ${whereUsed(name)})`);
    }
    L.push(`global_syscall_${action} = ${listValue(kept.map((e) => e.text))}`);
  }
  // The floor's kill list, when the base has none (--base none, or a base without one).
  const floorKill = (input.floor?.kill ?? []).filter((k) => !(k.startsWith("@") ? false : keptNames.has(k)));
  if (!baseGlobal.some((e) => e.action.kind === "kill") && floorKill.length > 0) {
    L.push("", "# the floor's kill list (profiles/floor.conf), kept whatever the base: dangerous groups, killed; a name in an", "# allow list beats group membership, so nothing learned is killed");
    L.push(`global_syscall_kill = ${listValue(floorKill)}`);
  }

  // ---- overlays
  const learnedAt = (key: string) => grouped.get(key) ?? new Map<string, LearnedCall>();
  const contribute = (into: Map<string, string[]>, key: string) => {
    if (key === FLOOR_KEY) {
      for (const name of floorNames) into.set(name, [...(into.get(name) ?? []), key]);
      return;
    }
    for (const name of learnedAt(key).keys()) if (known(name)) into.set(name, [...(into.get(name) ?? []), key]);
  };
  const overlays: Overlay[] = [];
  const recordedKeys = new Set([...grouped.keys()].filter((k) => k !== "unclassified" && grouped.get(k)!.size > 0));
  const baseDiffers = (c: ContextSpec) => {
    const d = decisions(c);
    if (!d || !globalDecisions) return false;
    if (!sameDecision(d.defaultDecision, globalDecisions.defaultDecision, true)) return true;
    return allSyscalls(arch).some((s) => !sameDecision(decisionFor(d, s.nr), decisionFor(globalDecisions, s.nr), true));
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

  const computed = overlays.map((o) => ({ o, ...overlayLists(o) }));
  function overlayLists(o: Overlay) {
    const cd = decisions(o.baseCtx);
    const overlayDefault = cd ? cd.defaultDecision.action : denyDefault;
    const allow: string[] = [...o.allowedLearned.keys()].sort();
    const lists: Record<ActionKind, string[]> = { allow: [], log: [], error: [], trap: [], kill: [] };
    for (const s of allSyscalls(arch)) {
      if (o.allowedLearned.has(s.name)) continue;
      const d: Decision = cd ? decisionFor(cd, s.nr) : { kind: "leaf", action: denyDefault, source: "global" };
      if (d.kind === "leaf") {
        if (d.action.kind === "allow") {
          if (overlayDefault.kind !== "allow") allow.push(s.name);
          continue;
        }
        // Denied here by the base. The overlay's default and the lists it inherits from the
        // global filter say so, unless the global list it was in lost it (learned elsewhere) or
        // the base decided it in an overlay of its own: then it is listed here.
        const g = globalDecisions ? decisionFor(globalDecisions, s.nr) : undefined;
        const fromGlobal = g !== undefined && sameDecision(g, d, true);
        if ((keptNames.has(s.name) || !fromGlobal) && !sameAction(d.action, overlayDefault)) lists[d.action.kind].push(withErrno(s.name, d.action));
        continue;
      }
      // Decided by argument conditions: the base's global rules for it, as written.
      for (const r of baseGlobalRules?.rules.get(s.nr)?.rules ?? []) {
        if (r.action.kind === "allow") allow.push(ruleText(s.name, r));
        else if (keptNames.has(s.name)) lists[r.action.kind].push(ruleText(s.name, r));
      }
    }
    return { overlayDefault, allow, lists };
  }
  const sessionLists = computed.find((c) => c.o.key === "session")?.lists;
  for (const { o, overlayDefault, allow, lists } of computed) {
    const setting = (a: string) => o.pattern.replace("%", a);
    const own = learnedAt(o.key);
    const others = [...o.allowedLearned].filter(([, keys]) => !keys.includes(o.key) && !keys.includes(FLOOR_KEY));
    L.push("", "# " + "-".repeat(94), `# ${o.key}: ${o.description}`, "#");
    L.push(`# learned in ${o.key}: ${plural(own.size, "syscall")}`);
    for (const name of [...own.keys()].sort()) L.push(seenLine(name, own.get(name)!));
    for (const [name, keys] of others.sort(([a], [b]) => a.localeCompare(b))) {
      const why = keys.includes("unclassified")
        ? "processes not yet classified used it; they run under every child overlay"
        : keys.includes("parallel_worker")
          ? "parallel workers used it; they run under their leader's session overlay"
          : perRole
            ? "learned in sessions of any role (a round written without --per-role, or a role whose name cannot be a setting)"
            : "learned in session: sessions are not learned per role without --per-role";
      L.push(`# also allowed here: ${name} (${why})`);
    }
    if (floorNames.size > 0) L.push(`# also allowed here: the floor (profiles/floor.conf, ${plural(floorNames.size, "syscall")}), in every context`);
    L.push(`# the rest of the allow list is what the base allows here (never reported while learning).`);
    L.push(`${setting("default")} = '${formatAction(overlayDefault, errorErrno)}'`);
    const learnedHere = [...o.allowedLearned.keys()].sort();
    L.push(`${setting("allow")} = ${listValue([...learnedHere, ...allow.slice(learnedHere.length).sort()])}`);
    for (const action of RESTRICTIVE) {
      if (lists[action].length === 0) {
        // A role's unset list falls back to the session's: say '*' (the global list) explicitly.
        if (o.key.startsWith("session/") && (sessionLists?.[action].length ?? 0) > 0) L.push(`${setting(action)} = '*'`);
        continue;
      }
      L.push(`# denied here as the base denies them (learned elsewhere, or the base's own rule for this context):`);
      L.push(`${setting(action)} = ${listValue(["*", ...lists[action]])}`);
    }
  }

  // The base's database overlays, kept: they stack on the session's. Their own restrictions of
  // syscalls sessions used are dropped (the server used them), and what sessions learned is
  // allowed in them (we do not learn per database).
  const sessionLearned = new Set<string>(floorNames);
  for (const [key, calls] of grouped) {
    if (["session", "parallel_worker", "unclassified"].includes(parseContextKey(key).context)) for (const n of calls.keys()) if (known(n)) sessionLearned.add(n);
  }
  for (const [db, f] of base?.databases ?? []) {
    L.push("", "# " + "-".repeat(94), `# database ${db}: the base's settings for sessions in database ${db} (on top of the session overlays)`, "#");
    L.push(`database_syscall_default.${db} = '${formatAction(f.defaultAction, errorErrno)}'`);
    for (const action of ["allow", ...RESTRICTIVE] as ActionKind[]) {
      const inherits = f.entries.some((e) => e.action.kind === action && e.inheritedFrom !== undefined);
      let own = f.entries.filter((e) => e.action.kind === action && e.inheritedFrom === undefined);
      const extra: string[] = [];
      if (action === "allow") {
        if (!inherits) extra.push(...[...sessionLearned].filter((n) => !own.some((e) => e.kind === "syscall" && e.name === n && e.conditions.length === 0)).sort());
      } else {
        const removed = own.filter((e) => e.kind === "syscall" && sessionLearned.has(e.name));
        if (removed.length > 0) L.push(`# removed from the base's ${action} list for ${db}, because sessions used them: ${removed.map((e) => e.text).join(", ")}`);
        own = own.filter((e) => !removed.includes(e));
      }
      // An unset list is '*' (the global list): only write what differs from that.
      if (inherits && own.length === 0 && extra.length === 0) continue;
      if (!inherits && own.length === 0 && extra.length === 0 && action !== "allow") continue;
      L.push(`database_syscall_${action}.${db} = ${listValue([...(inherits ? ["*"] : []), ...own.map((e) => e.text), ...extra])}`);
    }
  }

  const uncl = learnedAt("unclassified");
  if (uncl.size > 0) {
    L.push("", "# " + "-".repeat(94), "# unclassified: processes between fork and setting their title", "#");
    L.push(`# learned in unclassified: ${plural(uncl.size, "syscall")} (no overlay of its own: allowed in every child overlay above)`);
    for (const name of [...uncl.keys()].sort()) L.push(seenLine(name, uncl.get(name)!));
  }
  L.push("");
  return L.join("\n");
}

// ---------------------------------------------------------------------------------------------
// 4. Reading an earlier output back (--merge)

export interface LearnedFile {
  learned: Learned;
  rounds: number;
  since?: string;
  base?: string;
  perRole?: boolean;
}

const SEEN_RE = /^#   (\S+): first seen (\S+) in (\S+) \(pid (\d+): (.*)\), (\d+) calls?$/;

/** The learned calls recorded in an earlier output's comments, and its round count. */
export function parseLearnedPolicy(text: string): LearnedFile {
  const learned: Learned = new Map();
  let rounds = 0;
  let base: string | undefined;
  let since: string | undefined;
  let perRole: boolean | undefined;
  let block: string | undefined;
  for (const line of text.split("\n")) {
    const h = /^# learned in (\S+): /.exec(line);
    if (h) {
      block = h[1]!;
      continue;
    }
    const m = block !== undefined ? SEEN_RE.exec(line) : null;
    if (m && block !== undefined) {
      let calls = learned.get(block);
      if (!calls) learned.set(block, (calls = new Map()));
      addCall(calls, m[1]!, { count: Number(m[6]), first: { time: m[2]!, pid: Number(m[4]), process: m[5]!, context: m[3]! } });
      continue;
    }
    block = undefined;
    const r = /^# rounds:\s+(\d+)/.exec(line);
    if (r) rounds = Number(r[1]);
    const si = /^# since:\s+(\S+)/.exec(line);
    if (si) since = si[1]!;
    const b = /^# base:\s+(.*)$/.exec(line);
    if (b) base = b[1]!.trim();
    const p = /^# per-role:\s+(yes|no)/.exec(line);
    if (p) perRole = p[1] === "yes";
  }
  return { learned, rounds, ...(since !== undefined ? { since } : {}), ...(base !== undefined ? { base } : {}), ...(perRole !== undefined ? { perRole } : {}) };
}

// ---------------------------------------------------------------------------------------------
// 5. The run

export interface LearnOptions {
  /** postgres and its arguments (after --). */
  command: string[];
  /** Where the learned policy goes. */
  out: string;
  /**
   * A policy file, "none", "starter" (the bundled starter profile), or undefined for the default:
   * the floor with the hot-path calls allowed (per-context learning at near-unfiltered speed).
   */
  base?: string;
  /** An earlier output to fold in; a missing file counts as nothing learned yet. */
  merge?: string;
  /** Write over the --merge input (-o the same file). */
  force?: boolean;
  /** A shell command run as the server's OS user once the server accepts connections. */
  workload?: string;
  /** The server's OS user (when root). */
  user?: string;
  perRole?: boolean;
  allContexts?: boolean;
  arch?: Arch;
  /** The violation log (every learned call is written to it as well). */
  logPath?: string;
  insecurePolicyPermissions?: boolean;
  /** Shorten the periodic timers and wait for them (default true). */
  timers?: boolean;
  /** The crash round (default true). */
  crash?: boolean;
  /** How long to wait for the timer paths, from the server's start (seconds). */
  timerWaitS?: number;
  /** Messages, one line each (stderr). */
  say: (line: string) => void;
  /** A progress line updated in place: set when stderr is a terminal. */
  tty?: { write: (s: string) => void };
}

export interface LearnResult {
  out: string;
  /** (context, syscall) pairs no earlier round had seen. */
  newCalls: NewCall[];
  /** Calls recorded this round. */
  calls: number;
  learned: Learned;
  /** The server runs: the first, and the restart after the immediate stop. */
  runs: RunResult[];
  /** "N new syscalls this round" (0: nothing new), with "; INCOMPLETE ..." when coverage is short. */
  summary: string;
  /** The coverage report; complete when coverage.missing is empty. */
  coverage: Coverage;
  complete: boolean;
  /** The workload's exit status (undefined without --workload). */
  workloadStatus?: { code: number | null; signal: NodeJS.Signals | null };
}

export { serverEndpoint };

/** The round did not go through (the workload failed, the server did not come back): exit 1, nothing written. */
export class LearnFailed extends Error {
  override name = "LearnFailed";
}

function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

function serverVersion(postgres: string): string {
  try {
    return `${execFileSync(postgres, ["--version"], { encoding: "utf8" }).trim()} (${resolve(postgres)})`;
  } catch {
    return resolve(postgres);
  }
}

/** Writes atomically (a temp file in the same directory, renamed), root-readable policy permissions (0644). */
function writeOutput(path: string, text: string): void {
  const tmp = join(dirname(resolve(path)), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644, flag: "wx" });
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A root-owned 0755 directory with a 0644 policy file in it (the server's user reads, cannot change it). */
function tempPolicy(text: string): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-learn-"));
  chmodSync(dir, 0o755);
  const path = join(dir, "learning-base.conf");
  writeFileSync(path, text, { mode: 0o644 });
  return { dir, path };
}

export interface ResolvedBase {
  base: Policy | undefined;
  path: string | undefined;
  label: string;
  tmpDir?: string;
}

/** The base a learning run starts from (see LearnOptions.base). */
export function resolveBase(base: string | undefined, postgres: string, arch: Arch): ResolvedBase {
  if (base === "none") return { base: undefined, path: undefined, label: "none" };
  if (base === "starter") {
    const path = starterProfile(postgres, arch);
    return { base: loadPolicyFile(path), path, label: `${resolve(path)} (bundled starter profile)` };
  }
  if (base !== undefined) return { base: loadPolicyFile(base), path: base, label: resolve(base) };
  const t = tempPolicy(hotBaseText(readFloor(), readHotCalls()));
  return { base: loadPolicyFile(t.path), path: t.path, label: "default (profiles/floor.conf + the hot-path calls of profiles/learn-hot.conf)", tmpDir: t.dir };
}

/** `pg_seccomp learn`: run the server under the learning policy, then write what it used. */
export async function learn(opts: LearnOptions): Promise<LearnResult> {
  const { say } = opts;
  const arch = opts.arch ?? hostArch();
  const postgres = opts.command[0];
  if (!postgres) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D DATADIR");
  const dataDir = dataDirOf(opts.command.slice(1));
  if (opts.workload !== undefined && !dataDir) throw new LaunchError("--workload needs the data directory (-D DATADIR or PGDATA) to find the server's port and socket");
  if (opts.merge !== undefined && resolve(opts.merge) === resolve(opts.out) && !opts.force) {
    throw new LaunchError(`-o ${opts.out} is the --merge input: write the new round to another file (then compare and rename), or pass --force to replace it`);
  }

  const floorText = readFloor();
  const floor = floorLists(floorText);
  const resolved = resolveBase(opts.base, postgres, arch);
  const { base } = resolved;
  const baseLabel = resolved.label;

  let previous: LearnedFile = { learned: new Map(), rounds: 0 };
  if (opts.merge !== undefined) {
    if (existsSync(opts.merge)) {
      previous = parseLearnedPolicy(readFileSync(opts.merge, "utf8"));
      if (previous.base !== undefined && previous.base !== baseLabel) say(`note: ${opts.merge} was learned with base ${previous.base}; this round uses ${baseLabel}`);
    } else {
      say(`note: ${opts.merge} does not exist yet: nothing learned before this round`);
    }
  }

  const policy = learningPolicy(base);
  // run records the policy's path in its run state (for status and sql install).
  let tmpDir = resolved.tmpDir;
  let policyPath = resolved.path;
  if (!policyPath) {
    const t = tempPolicy("# pg_seccomp learn --base none: every call is logged\nglobal_syscall_default = 'log'\nsyscall_unknown_action = 'default'\n");
    tmpDir = t.dir;
    policyPath = t.path;
  }

  const round: Learned = new Map();
  let calls = 0;
  const names = new Set<string>();
  const started = Date.now();
  const roundStart = new Date(started).toISOString();
  const perRole = opts.perRole ?? false;
  const prevGrouped = groupLearned(previous.learned, perRole);
  const status = () =>
    `learning: ${elapsed(Date.now() - started)} elapsed, ${plural(calls, "call")} recorded, ${plural(names.size, "distinct syscall")}, ${plural(round.size, "context")}`;
  const tty = opts.tty;
  const line = (s: string) => {
    if (tty) tty.write(`\r\x1b[K${s}\n${status()}`);
    else say(s);
  };
  const ticker = setInterval(() => (tty ? tty.write(`\r\x1b[K${status()}`) : say(status())), tty ? 1000 : 10_000);
  ticker.unref();

  const onEvent = (e: ViolationEvent) => {
    if (e.action !== "log") {
      line(`warning: ${e.syscall} in ${e.context} was answered ${e.action}, not logged (pid ${e.pid} ${e.process})`);
      return;
    }
    calls++;
    names.add(e.syscall);
    if (recordEvent(round, e)) {
      const key = outputKey(eventContextKey(e), perRole);
      const known = prevGrouped.get(key)?.has(e.syscall) || prevGrouped.get(parseContextKey(key).context)?.has(e.syscall);
      line(`${known ? "seen" : "new"}: ${e.syscall} in ${eventContextKey(e)} (pid ${e.pid}: ${cleanTitle(e.process)})`);
    }
  };
  line(`learning with base ${baseLabel}${opts.workload === undefined ? "; stop the server with Ctrl-C (SIGINT) or SIGTERM to write " + opts.out : ""}`);
  let proc: ProcedureResult;
  try {
    proc = await runProcedure({
      policy, policyPath, arch, command: opts.command, dataDir, ...(opts.workload !== undefined ? { workload: opts.workload } : {}),
      ...(opts.user !== undefined ? { user: opts.user } : {}), ...(opts.logPath !== undefined ? { logPath: opts.logPath } : {}),
      insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, timers: opts.timers ?? true, crash: opts.crash ?? true,
      ...(opts.timerWaitS !== undefined ? { timerWaitS: opts.timerWaitS } : {}), onEvent, line,
    });
  } finally {
    clearInterval(ticker);
    if (tty) tty.write(`\r\x1b[K`);
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }
  // A round that did not go through must not look like one: nothing is written.
  if (proc.failures.length > 0) {
    throw new LearnFailed(`learning failed: ${proc.failures.join("; ")}; ${opts.out} is left as it was (nothing written)`);
  }

  proc.coverage.recorded = [...new Set([...round.keys()].map((k) => parseContextKey(k).context))].sort();
  const coverageLines = formatCoverage(proc.coverage, PROCESS_KINDS);
  for (const l of coverageLines) say(l);
  const complete = proc.coverage.missing.length === 0;

  const learned = mergeLearned(previous.learned, round);
  const fresh = newCalls(previous.learned, round, perRole);
  const text = renderLearnedPolicy({
    learned, base, baseLabel, arch, server: serverVersion(postgres), workload: opts.workload, perRole,
    allContexts: opts.allContexts ?? false, rounds: previous.rounds + 1, roundStart, roundEnd: new Date().toISOString(),
    ...(opts.merge !== undefined && existsSync(opts.merge) ? { merged: resolve(opts.merge) } : {}),
    ...(previous.since !== undefined ? { since: previous.since } : {}),
    floor, coverage: coverageLines,
  });
  writeOutput(opts.out, text);
  say(`recorded ${plural(calls, "call")} of ${plural(names.size, "distinct syscall")} in ${plural(round.size, "context")}; wrote ${opts.out}`);
  for (const n of fresh) say(`  new: ${n.syscall} in ${n.context}`);
  const summary = `${plural(fresh.length, "new syscall")} this round` + (complete ? "" : `; INCOMPLETE (not seen: ${proc.coverage.missing.join("; ")})`);
  return {
    out: opts.out, newCalls: fresh, summary, calls, learned, runs: proc.runs, coverage: proc.coverage, complete,
    ...(proc.workloadStatus ? { workloadStatus: proc.workloadStatus } : {}),
  };
}
