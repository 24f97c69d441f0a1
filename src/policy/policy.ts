// A policy: the settings of a seed-compatible policy file, interpreted. Arch-independent:
// syscall names are checked to exist on some supported arch here, and resolved to numbers
// for one arch by resolveFilter().

import { PolicyError, type PolicyNote, type SourceLoc } from "./errors.js";
import { ACTION_KINDS, parseAction, sameAction, type Action, type ActionKind } from "./actions.js";
import { parseList, type ArgCondition, type ListEntry } from "./entries.js";
import { readConf, readConfText, type ConfSetting, type IncludePlace } from "./conf.js";
import { fileSystemSource, type PolicySource } from "./source.js";
import { errnoNumber } from "../syscalls/errno.js";
import { ARCHES, resolveSyscall, suggestNames, type Arch } from "../syscalls/index.js";
import { expandGroup, groupNames } from "../syscalls/groups.js";
import { quoteIdentifier, splitIdentifierString } from "./identifiers.js";
import { parseHardening, type Hardening, type PresetName } from "./harden.js";

export const FILTER_ACTIONS: readonly ActionKind[] = ACTION_KINDS;

/** An entry of a list as the policy holds it, with where it came from. */
export interface PolicyEntry extends ListEntry {
  action: Action;
  /** Set when the entry came from `*` (inherited from the global list). */
  inheritedFrom?: SourceLoc;
  /** Set for the rules of a hardening preset: skipped on an arch that lacks the syscall, as group members are. */
  preset?: PresetName;
  /** A preset's denial that is expected and harmless (clone3's ENOSYS): not written to the violation log. */
  quiet?: boolean;
}

export interface FilterSpec {
  /** "global", "session", "session.<role>", "database.<db>", or a process kind. */
  name: string;
  defaultAction: Action;
  defaultLoc?: SourceLoc;
  entries: PolicyEntry[];
  /** An overlay's lists that are the global one ('*' exactly, or not set and inherited so). */
  globalLists?: Set<ActionKind>;
}

export interface Policy {
  enabled: boolean;
  /**
   * "pgseccomp" when the policy uses pgseccomp's `pgseccomp.*` names or sets compat = pgseccomp:
   * defaults, role lookup and the table follow CrunchyData/pgseccomp (docs/policy.md,
   * "Differences from pgseccomp"); absent for the seed's names.
   */
  compat?: "pgseccomp";
  /** errno for `error` entries that name none (syscall_error_errno; EACCES as pgseccomp). */
  errorErrno: number;
  /** For syscall numbers the arch table does not know, when the default denies. */
  unknownAction: Action | "default";
  global: FilterSpec;
  session: FilterSpec;
  /** Per-role session overlays (pgseccomp's session_syscall_<action>.<role>). */
  roles: Map<string, FilterSpec>;
  /** Overlays for client backends connected to a database (database_syscall_<action>.<db>). */
  databases: Map<string, FilterSpec>;
  /** Overlays for the postmaster and each backend type (postmaster_syscall_*, checkpointer_syscall_*, ...). */
  processes: Map<ProcessKind, FilterSpec>;
  /**
   * set_client_filter = on: `run` lets sessions narrow themselves with set_client_filter(), at
   * the cost of one argument check on lseek's path in the installed program (lseek then leaves
   * the kernel's constant-action cache). Absent or false: off, the default.
   */
  clientFilter?: boolean;
  /**
   * Hardening presets (syscall_harden): one filter per preset, stacked on every context. Absent
   * when the policy sets none.
   */
  hardening?: Hardening;
  notes: PolicyNote[];
  /** Every file read, the main file first. */
  files: string[];
  /** Missing include_if_exists targets and include_dir directories (for permission checks). */
  includePlaces?: IncludePlace[];
}

export const DEFAULT_ERROR_ERRNO = errnoNumber("EACCES")!;
export const DEFAULT_UNKNOWN_ACTION: Action = { kind: "error", errno: errnoNumber("ENOSYS")! };

/**
 * Processes that can have a filter of their own besides client sessions: the postmaster and the
 * backend types of PostgreSQL 14 to 18, named as in pg_stat_activity.backend_type with
 * underscores ("slotsync worker" → slotsync_worker; PostgreSQL 14's stats collector has no row
 * there and is known by its title). Every name is accepted whatever the server's version; a kind
 * the running server does not have is a note (kindsAbsentIn), not an error.
 */
export const PROCESS_KINDS = [
  "postmaster", "autovacuum_launcher", "autovacuum_worker", "background_writer", "checkpointer", "walwriter",
  "walsender", "walreceiver", "startup", "archiver", "logical_replication_launcher", "logical_replication_worker",
  "parallel_worker", "background_worker", "logger", "stats_collector", "walsummarizer", "slotsync_worker", "io_worker",
] as const;
export type ProcessKind = (typeof PROCESS_KINDS)[number];

/** The majors that have a process kind, for the kinds not in every supported one (14 to 18). */
export const KIND_MAJORS: Readonly<Partial<Record<ProcessKind, { since?: number; until?: number; what: string }>>> = {
  stats_collector: { until: 14, what: "the statistics collector" },
  walsummarizer: { since: 17, what: "the WAL summarizer (summarize_wal = on)" },
  slotsync_worker: { since: 17, what: "the slot sync worker (a standby with sync_replication_slots = on)" },
  io_worker: { since: 18, what: "io workers (io_method = worker)" },
};

/** Whether a server of this major can have processes of this kind. */
export function kindExistsIn(kind: ProcessKind, major: number): boolean {
  const m = KIND_MAJORS[kind];
  return !m || ((m.since === undefined || major >= m.since) && (m.until === undefined || major <= m.until));
}

/** Which majors a kind exists in, in words ("PostgreSQL 17 and later"). */
export function kindMajorsText(kind: ProcessKind): string {
  const m = KIND_MAJORS[kind];
  if (!m) return "every PostgreSQL";
  if (m.since !== undefined) return `PostgreSQL ${m.since} and later`;
  return `PostgreSQL ${m.until} and earlier`;
}

/**
 * Notes for the process kinds a policy gives settings of their own that a server of `major` does
 * not have: those settings apply to no process there (not an error: one policy can serve servers
 * of several versions).
 */
export function kindsAbsentIn(policy: Policy, major: number): string[] {
  const out: string[] = [];
  for (const kind of policy.processes.keys()) {
    if (kindExistsIn(kind, major)) continue;
    const m = KIND_MAJORS[kind]!;
    out.push(`PostgreSQL ${major} has no ${kind} processes (${m.what}: ${kindMajorsText(kind)}): the policy's ${kind}_syscall_* settings apply to no process of this server`);
  }
  return out;
}

const FILTER_KINDS = ["global", "session", "database", ...PROCESS_KINDS] as const;

const LIST_SETTING = new RegExp(`^(${FILTER_KINDS.join("|")})_syscall_(default|allow|log|error|trap|kill)(?:\\.([a-z_][a-z0-9_$]*|"(?:[^"]|"")+"))?$`);
const KNOWN_SETTINGS = [
  "seccomp", "enabled", "compat", "session_roles", "syscall_error_errno", "syscall_unknown_action", "syscall_harden", "set_client_filter", "shared_preload_libraries",
  ...FILTER_KINDS.flatMap((f) => ["default", ...ACTION_KINDS].map((a) => `${f}_syscall_${a}${f === "database" ? ".<name>" : ""}`)),
];

export function loadPolicyFile(path: string, source: PolicySource = fileSystemSource): Policy {
  const conf = readConf(path, source);
  return { ...buildPolicy(conf.settings, conf.files), includePlaces: conf.includePlaces };
}

export function parsePolicyText(text: string, name = "<policy>"): Policy {
  const conf = readConfText(text, name);
  return { ...buildPolicy(conf.settings, conf.files), includePlaces: conf.includePlaces };
}

interface Setting {
  value: string;
  setting: ConfSetting;
}

export function buildPolicy(settings: readonly ConfSetting[], files: string[]): Policy {
  const notes: PolicyNote[] = [];
  // Last one wins, as in postgresql.conf; an override is worth a note.
  const byName = new Map<string, Setting>();
  for (const s of settings) {
    const name = canonicalSuffix(s.name.startsWith("pgseccomp.") ? s.name.slice("pgseccomp.".length) : s.name);
    if (name === "shared_preload_libraries") {
      notes.push({ loc: s.loc, message: "shared_preload_libraries is ignored: pg_seccomp needs no library in the server" });
      continue;
    }
    if (/^[a-z_]+_syscall_harden(\..*)?$/.test(name)) {
      throw new PolicyError(s.loc, `hardening presets apply to every process: there is no "${s.name}"`, "write syscall_harden = '...' (see \"Hardening presets\" in docs/policy.md)");
    }
    if (!LIST_SETTING.test(name) && !KNOWN_SETTINGS.includes(name)) {
      const maybe = suggestNames(KNOWN_SETTINGS, name);
      throw new PolicyError(s.loc, `unknown setting "${s.name}"`, maybe.length ? `did you mean "${maybe[0]}"?` : "see `pg_seccomp help policy` for the settings");
    }
    if (name === "enabled" && !s.name.startsWith("pgseccomp.")) {
      throw new PolicyError(s.loc, `unknown setting "enabled"`, `write "seccomp = on" or "pgseccomp.enabled = on"`);
    }
    const prev = byName.get(name);
    if (prev) notes.push({ loc: s.loc, message: `${s.name} overrides the value set at ${prev.setting.loc.file}:${prev.setting.loc.line}` });
    byName.set(name, { value: s.value, setting: s });
  }
  const get = (n: string) => byName.get(n);

  const compatSetting = get("compat");
  let compat: "pgseccomp" | undefined = settings.some((x) => x.name.startsWith("pgseccomp.")) ? "pgseccomp" : undefined;
  if (compatSetting) {
    const v = compatSetting.value.trim().toLowerCase();
    if (v === "pgseccomp") compat = "pgseccomp";
    else if (v === "none" || v === "off" || v === "") compat = undefined;
    else throw new PolicyError(compatSetting.setting.valueLoc, `compat = "${compatSetting.value}" is not known`, "write compat = pgseccomp (CrunchyData/pgseccomp's defaults and rules) or compat = none (the seed's)");
  }

  const enabledSetting = get("seccomp") ?? get("enabled");
  // pgseccomp.enabled defaults to off in pgseccomp; the seed's seccomp to on.
  const enabled = enabledSetting ? parseBool(enabledSetting) : compat !== "pgseccomp";
  if (!enabledSetting && compat === "pgseccomp") {
    notes.push({ loc: { file: files[0] ?? "<policy>", line: 1, column: 1 }, message: "pgseccomp.enabled is not set: off, as in pgseccomp, so no filter is installed; set pgseccomp.enabled = on" });
  }

  const errnoSetting = get("syscall_error_errno");
  let errorErrno = DEFAULT_ERROR_ERRNO;
  if (errnoSetting) {
    const a = parseAction(`error:${errnoSetting.value}`, DEFAULT_ERROR_ERRNO, errnoSetting.setting.valueLoc);
    errorErrno = a.errno!;
  }
  const unknownSetting = get("syscall_unknown_action");
  let unknownAction: Action | "default" = DEFAULT_UNKNOWN_ACTION;
  if (unknownSetting) {
    unknownAction = unknownSetting.value.trim().toLowerCase() === "default"
      ? "default"
      : parseAction(unknownSetting.value, errorErrno, unknownSetting.setting.valueLoc);
  }

  const globalDefault = get("global_syscall_default");
  if (!globalDefault && compat === "pgseccomp") {
    notes.push({ loc: { file: files[0] ?? "<policy>", line: 1, column: 1 }, message: "global_syscall_default is not set: allow, as in pgseccomp" });
  } else if (!globalDefault) {
    const anyList = settings.find((s) => LIST_SETTING.test(s.name.replace(/^pgseccomp\./, "")));
    throw new PolicyError(
      anyList?.loc ?? (files[0] ? { file: files[0], line: 1, column: 1 } : undefined),
      "global_syscall_default is not set",
      "say what happens to syscalls that no list names: global_syscall_default = 'error' (or allow, log, kill)",
    );
  }

  const ALLOW_DEFAULT: Action = { kind: "allow" };
  const global = buildFilter("global", "global", get, errorErrno, undefined, compat ? ALLOW_DEFAULT : undefined);
  // pgseccomp: a session default that is not set is allow (so a narrower session list alone
  // changes nothing); the seed's: the global default.
  const session = buildFilter("session", "session", get, errorErrno, { inheritFrom: global, global }, compat ? ALLOW_DEFAULT : undefined);

  // Names that carry a suffix: roles (session_syscall_*.<role>) and databases (database_syscall_*.<db>).
  // session_roles is read as PostgreSQL reads a list of role names (identifiers.ts).
  const rolesSetting = get("session_roles");
  let listedRoles: string[] | undefined;
  if (rolesSetting) {
    const ids = splitIdentifierString(rolesSetting.value);
    if (ids === null) {
      throw new PolicyError(rolesSetting.setting.valueLoc, `session_roles "${rolesSetting.value}" is not a list of role names${compat ? " (pgseccomp would warn and use its built-in empty list)" : ""}`, `write role names separated by commas; quote a name that has upper-case letters or other characters: '"Alice", bob'`);
    }
    listedRoles = ids.map((i) => i.name);
  }
  // A role's settings, by the role name its suffix stands for (unquoted: folded to lower case;
  // quoted: as written). pgseccomp looks them up by name, which PostgreSQL compares ignoring
  // case: in compat mode a role matches a suffix whatever the case.
  const roleSettings = new Map<string, Setting[]>();
  const dbNames = new Set<string>();
  for (const [name, s] of byName) {
    const m = LIST_SETTING.exec(name);
    if (!m) continue;
    const [, kind, , suffix] = m;
    if (kind === "database") {
      if (suffix === undefined) {
        throw new PolicyError(s.setting.loc, `"${s.setting.name}" needs a database name`, `write database_syscall_${m[2]}.<database> = '...'`);
      }
      dbNames.add(unquoteSuffix(suffix));
      continue;
    }
    if (suffix === undefined) continue;
    if (kind !== "session") {
      throw new PolicyError(s.setting.loc, `per-role settings exist only for session lists, not "${s.setting.name}"`, `write session_syscall_${m[2]}.${suffix}`);
    }
    const role = unquoteSuffix(suffix);
    const raw = (s.setting.rawName ?? "").replace(/^[^.]*\.(?:[^.]*\.)?/, "");
    if (!compat && !suffix.startsWith('"') && raw !== role && raw.toLowerCase() === role) {
      notes.push({ loc: s.setting.loc, message: `${s.setting.rawName} names role "${role}": unquoted names fold to lower case, as in PostgreSQL; for a role created as "${raw}" write ${s.setting.name.replace(/\.[^.]*$/, "")}.${quoteIdentifier(raw)}` });
    }
    const list = roleSettings.get(role) ?? [];
    list.push(s);
    roleSettings.set(role, list);
  }
  const roleNames = new Set<string>(listedRoles ?? []);
  const listedText = listedRoles ? listedRoles.map(quoteIdentifier).join(", ") : "";
  for (const [role, ss] of roleSettings) {
    const matches = compat ? (listedRoles ?? []).filter((r) => r.toLowerCase() === role.toLowerCase()) : listedRoles === undefined || listedRoles.includes(role) ? [role] : [];
    if (matches.length > 0) {
      if (!compat) roleNames.add(role);
      continue;
    }
    const near = (listedRoles ?? []).find((r) => r.toLowerCase() === role.toLowerCase());
    for (const x of ss) {
      const why = compat && !listedRoles
        ? "pgseccomp reads per-role settings only for the roles pgseccomp.session_roles lists, and it is not set"
        : `session_roles (${listedText}) does not list role "${role}"`;
      const hint = near !== undefined ? `; for the role "${near}" write ${x.setting.name.replace(/\.[^.]*$/, "")}.${quoteIdentifier(near)}` : "";
      notes.push({ loc: x.setting.loc, message: `${x.setting.rawName ?? x.setting.name} can never apply: ${why}, so it is ignored${hint}` });
    }
  }
  const roles = new Map<string, FilterSpec>();
  for (const role of [...roleNames].sort()) {
    // compat: the settings whose suffix equals the role's name ignoring case (pgseccomp's lookup).
    const key = compat ? [...roleSettings.keys()].find((k) => k.toLowerCase() === role.toLowerCase()) : role;
    const pattern = `session_syscall_%.${quoteIdentifier(key ?? role)}`;
    roles.set(role, buildFilter(`session.${role}`, pattern, get, errorErrno, { inheritFrom: session, global }, undefined, compat));
  }
  const databases = new Map<string, FilterSpec>();
  for (const db of [...dbNames].sort()) {
    databases.set(db, buildFilter(`database.${db}`, `database_syscall_%.${quoteIdentifier(db)}`, get, errorErrno, { inheritFrom: global, global }));
  }
  // A process kind gets a filter only when some setting names it.
  const processes = new Map<ProcessKind, FilterSpec>();
  for (const kind of PROCESS_KINDS) {
    const named = [...byName.keys()].find((n) => n.startsWith(`${kind}_syscall_`));
    if (named) {
      processes.set(kind, buildFilter(kind, kind, get, errorErrno, { inheritFrom: global, global }));
      const m = KIND_MAJORS[kind];
      if (m) notes.push({ loc: byName.get(named)!.setting.loc, message: `${kind}: ${m.what} exists in ${kindMajorsText(kind)} only; on other servers this setting applies to no process` });
    }
  }

  const clientFilterSetting = get("set_client_filter");
  // Off by default (its knock takes lseek out of the kernel's cache); on in pgseccomp mode, where
  // the function is always there for pgseccomp's users.
  const clientFilter = clientFilterSetting ? parseBool(clientFilterSetting) : compat === "pgseccomp";

  const hardenSetting = get("syscall_harden");
  const hardening = hardenSetting ? parseHardening(hardenSetting.value, hardenSetting.setting.valueLoc, hardenSetting.setting.loc) : undefined;

  if (compat) for (const f of [global, session, ...roles.values(), ...databases.values(), ...processes.values()]) dropDefaultActionEntries(f);
  for (const f of [global, session, ...roles.values(), ...databases.values(), ...processes.values(), ...(hardening?.filters ?? [])]) checkEntries(f);
  return { enabled, ...(compat ? { compat } : {}), ...(clientFilter ? { clientFilter } : {}), errorErrno, unknownAction, global, session, roles, databases, processes, ...(hardening ? { hardening } : {}), notes, files };
}

/** A setting name with its quoted suffix in canonical form: `x."alice"` is `x.alice`. */
function canonicalSuffix(name: string): string {
  const q = name.indexOf('."');
  return q < 0 ? name : `${name.slice(0, q)}.${quoteIdentifier(unquoteSuffix(name.slice(q + 1)))}`;
}

/** The name a suffix stands for: a quoted one without its quotes, an unquoted one as (already) folded. */
function unquoteSuffix(suffix: string): string {
  return suffix.startsWith('"') ? suffix.slice(1, -1).replace(/""/g, '"') : suffix;
}

function parseBool(s: Setting): boolean {
  const v = s.value.trim().toLowerCase();
  if (["on", "true", "yes", "1", "t", "y"].includes(v)) return true;
  if (["off", "false", "no", "0", "f", "n"].includes(v)) return false;
  throw new PolicyError(s.setting.valueLoc, `"${s.value}" is not a boolean`, "write on or off");
}

/**
 * Builds one filter from its settings. `pattern` is the setting name with `%` for the action
 * ("session_syscall_%.alice"); a bare kind means "<kind>_syscall_<action>". An overlay (every
 * filter but the global one) falls back, for a list or default it does not set, to its
 * `inheritFrom` filter: the global filter for session, database and process overlays, so that
 * an overlay without settings restricts exactly as much as the global filter; the session
 * filter for a role (pgseccomp: a role's missing list is the session's). Fallback entries count
 * as inherited: the overlay's own explicit entries beat them.
 */
function buildFilter(
  name: string,
  pattern: string,
  get: (n: string) => Setting | undefined,
  errorErrno: number,
  overlay: { inheritFrom: FilterSpec; global: FilterSpec } | undefined,
  defaultIfUnset?: Action,
  pgseccompRoleDefault?: "pgseccomp",
): FilterSpec {
  const setting = (action: string) => get(pattern.includes("%") ? pattern.replace("%", action) : `${pattern}_syscall_${action}`);
  const defSetting = setting("default");
  let defaultAction: Action;
  let defaultLoc: SourceLoc | undefined;
  if (defSetting && pgseccompRoleDefault && !["allow", "log", "error", "kill"].includes(defSetting.value)) {
    // pgseccomp compares a role's default with strcmp and ignores anything else (a warning-less fallback).
    throw new PolicyError(defSetting.setting.valueLoc, `"${defSetting.value}" is not one of allow, log, error, kill as written: pgseccomp would ignore this role default and use the session's`, `write ${defSetting.value.trim().toLowerCase() || "allow"} (lower case), or leave the setting out to use the session default`);
  }
  if (defSetting) {
    defaultAction = parseAction(defSetting.value, errorErrno, defSetting.setting.valueLoc);
    defaultLoc = defSetting.setting.loc;
  } else if (defaultIfUnset) {
    defaultAction = defaultIfUnset;
  } else {
    defaultAction = overlay!.inheritFrom.defaultAction;
    defaultLoc = overlay!.inheritFrom.defaultLoc;
  }
  const entries: PolicyEntry[] = [];
  const globalLists = new Set<ActionKind>();
  for (const action of ACTION_KINDS) {
    const s = setting(action);
    if (s?.value === "*" || (!s && overlay && (overlay.inheritFrom === overlay.global || overlay.inheritFrom.globalLists?.has(action)))) globalLists.add(action);
    if (!s) {
      if (overlay) {
        entries.push(
          ...overlay.inheritFrom.entries.filter((e) => e.action.kind === action).map((e) => ({ ...e, inheritedFrom: e.inheritedFrom ?? e.loc })),
        );
      }
      continue;
    }
    for (const e of parseList(s.value, s.setting.valueLoc)) {
      if (e.kind === "inherit") {
        if (!overlay) {
          throw new PolicyError(e.loc, `"*" means "inherit the global list" and can only be used in session and other overlay lists`, `list the syscalls, or write '' for an empty list`);
        }
        entries.push(...inheritList(overlay.global, action, e.loc));
        continue;
      }
      if (e.errno !== undefined && action !== "error") {
        throw new PolicyError(e.loc, `"${e.text}" gives an errno in the ${action} list`, `an errno belongs only in an error list: move it to the error list`);
      }
      const act: Action = action === "error" ? { kind: "error", errno: e.errno ?? errorErrno } : { kind: action };
      entries.push({ ...e, action: act });
    }
  }
  return { name, defaultAction, defaultLoc, entries, ...(overlay ? { globalLists } : {}) };
}

/**
 * pgseccomp mode: pgseccomp adds no rule for a list whose action is its filter's default
 * (libseccomp refuses such rules): the list is dropped, inherited or written, before overlaps are
 * checked, so `session_syscall_allow.joe = 'execve'` with joe's default allow does not undo the
 * error list joe inherits. pg_seccomp's own extensions keep their meaning: entries with argument
 * conditions, and a name that carves a syscall out of a group of the same filter, stay.
 */
export function dropDefaultActionEntries(f: FilterSpec): void {
  const grouped = new Set(
    f.entries.filter((e) => e.kind === "group" && !sameAction(e.action, f.defaultAction)).flatMap((e) => ARCHES.flatMap((a) => expandGroup(e.name, a).syscalls)),
  );
  f.entries = f.entries.filter((e) => e.conditions.length > 0 || !sameAction(e.action, f.defaultAction) || (e.kind === "syscall" && grouped.has(e.name)));
}

function inheritList(global: FilterSpec, action: ActionKind, at: SourceLoc | undefined): PolicyEntry[] {
  return global.entries
    .filter((e) => e.action.kind === action)
    .map((e) => ({ ...e, inheritedFrom: at ?? e.loc }));
}

/** Names must exist on some arch; groups must exist; no syscall may sit unconditionally in two lists. */
/** Entries with argument conditions for one syscall in one filter (see MAX_LIST_ENTRIES). */
export const MAX_CONDITIONAL_ENTRIES = 1024;

export function checkEntries(f: FilterSpec): void {
  const unconditional = new Map<string, PolicyEntry>();
  const conditional = new Map<string, number>();
  for (const e of f.entries) {
    if (e.conditions.length > 0) {
      const n = (conditional.get(e.name) ?? 0) + 1;
      conditional.set(e.name, n);
      if (n > MAX_CONDITIONAL_ENTRIES) {
        throw new PolicyError(
          e.loc,
          `the ${f.name} filter has more than ${MAX_CONDITIONAL_ENTRIES} entries with argument conditions for "${e.name}"; each takes at least two of the 4096 instructions a filter program may have`,
          "group the conditions (a range argN >= a, argN <= b, or argN & mask == value), or let the default action decide",
        );
      }
    }
    if (e.kind === "group") {
      if (!groupNames().includes(e.name)) {
        const maybe = suggestNames(groupNames(), e.name);
        throw new PolicyError(e.loc, `unknown syscall group "${e.name}"`, maybe.length ? `did you mean "${maybe[0]}"? (pg_seccomp groups lists them)` : "pg_seccomp groups lists the groups");
      }
      continue;
    }
    if (!ARCHES.some((a) => resolveSyscall(a, e.name).ok)) {
      const r = resolveSyscall(ARCHES[0]!, e.name);
      throw new PolicyError(e.loc, r.ok ? `unknown syscall "${e.name}"` : r.message, "pg_seccomp syscalls lists the names this version knows");
    }
    if (e.conditions.length > 0 || e.inheritedFrom) continue;
    const prev = unconditional.get(e.name);
    if (prev && prev.action.kind !== e.action.kind) {
      throw new PolicyError(
        e.loc,
        `syscall "${e.name}" is in both the ${prev.action.kind} list (${prev.loc.file}:${prev.loc.line}:${prev.loc.column}) and the ${e.action.kind} list of the ${f.name} filter`,
        "keep it in one list; to treat some calls differently, give one entry argument conditions",
      );
    }
    unconditional.set(e.name, e);
  }
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
