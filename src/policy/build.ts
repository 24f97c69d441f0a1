// A Policy from the settings of a policy file, in named steps: the settings by name (an
// override is a note), compat mode and enabled, the defaults, the global and session filters,
// the overlays of roles, databases and process kinds, the hardening presets, set_client_filter;
// then the entries of every filter are checked.

import { PolicyError, type PolicyNote, type SourceLoc } from "./errors.js";
import { ACTION_KINDS, hasErrno, parseAction, sameAction, type Action, type ActionKind } from "./actions.js";
import { parseList } from "./entries.js";
import type { ConfSetting } from "./conf.js";
import { ARCHES, resolveSyscall, suggestNames } from "../syscalls/index.js";
import { expandGroup, groupNames } from "../syscalls/groups.js";
import { quoteIdentifier, splitIdentifierString } from "./identifiers.js";
import { parseHardening, type Hardening } from "./harden.js";
import {
  CODE_SETTINGS, PROGRAM_PARENTS, type ProgramParent, DEFAULT_ERROR_ERRNO, DEFAULT_UNKNOWN_ACTION, isSqlKind, KIND_MAJORS, kindMajorsText, PROCESS_KINDS,
  type FilterSpec, type Policy, type PolicyEntry, type ProcessKind,
} from "./model.js";

const FILTER_KINDS = ["global", "session", "database", "program", ...PROCESS_KINDS] as const;

const LIST_SETTING = new RegExp(`^(${FILTER_KINDS.join("|")})_syscall_(default|allow|log|error|terminate|trap|kill)(?:\\.([a-z_][a-z0-9_$]*|"(?:[^"]|"")+"))?$`);
/** server_setting.<name>: a PostgreSQL setting (a custom one may have one dot: pgaudit.log). */
const SERVER_SETTING = /^server_setting\.([a-z_][a-z0-9_$]*(?:\.[a-z_][a-z0-9_$]*)?)$/;
const KNOWN_SETTINGS = ["server_setting.<name>", 
  "seccomp", "enabled", "compat", "session_roles", "syscall_error_errno", "syscall_unknown_action", "syscall_harden", "set_client_filter", "server_dumpable", "shared_preload_libraries",
  ...FILTER_KINDS.flatMap((f) => ["default", ...ACTION_KINDS].map((a) => `${f}_syscall_${a}${f === "database" ? ".<name>" : f === "program" ? ".<archiver|startup|session>" : ""}`)),
];

interface Setting {
  value: string;
  setting: ConfSetting;
  /** Place in reading order (an included file's settings come where its include line is). */
  order: number;
  /**
   * The value this setting had before this line (the included file's, when this file extends
   * it): what '*' in a list means here. Absent in pgseccomp mode, where '*' in a session list is
   * the global list as pgseccomp (which sees only the last value) reads it.
   */
  previous?: Setting;
  /** Some setting before this one came from another file: this file extends one it included. */
  afterInclude: boolean;
}

type Compat = "pgseccomp" | undefined;

/** The settings by name, with what the steps share: the notes so far and where the policy starts. */
interface Settings {
  byName: Map<string, Setting>;
  get(name: string): Setting | undefined;
  notes: PolicyNote[];
  /** Line 1 of the main file, for notes about a setting that is not there. */
  start: SourceLoc;
}

export function buildPolicy(settings: readonly ConfSetting[], files: string[]): Policy {
  const s = settingsByName(settings, files);
  const compat = compatMode(settings, s);
  // pgseccomp reads only the last value of a setting: '*' there is the global list, never an earlier value.
  if (compat) {
    for (const x of s.byName.values()) {
      delete x.previous;
      x.afterInclude = false;
    }
  }
  const enabled = enabledSetting(s, compat);
  const { errorErrno, unknownAction } = errnoAndUnknown(s);
  requireGlobalDefault(settings, s, compat, files);
  const { global, session } = globalAndSession(s, compat, errorErrno);
  const listed = listedRoles(s, compat);
  const { roleSettings, dbNames } = suffixedSettings(s, compat);
  const roles = roleFilters(s, compat, errorErrno, { listed, roleSettings }, { global, session });
  const databases = databaseFilters(s, errorErrno, dbNames, global);
  const { processes, walsenderWithDatabase } = processFilters(s, errorErrno, global, session);
  const programs = programFilters(s, errorErrno, global, session, processes);
  const clientFilter = clientFilterOn(s, compat);
  const dumpable = s.get("server_dumpable");
  const serverDumpable = dumpable ? parseBool(dumpable) : false;
  const hardening = hardeningPresets(s);
  const serverSettings = pinnedServerSettings(s);
  const filters = [global, session, ...roles.values(), ...databases.values(), ...processes.values(), ...(walsenderWithDatabase ? [walsenderWithDatabase] : []), ...(programs?.values() ?? [])];
  if (compat) for (const f of filters) dropDefaultActionEntries(f);
  for (const f of [...filters, ...(hardening?.filters ?? [])]) checkEntries(f);
  return {
    enabled, ...(!enabled && !s.get("seccomp") && !s.get("enabled") ? { offByDefault: true as const } : {}), ...(compat ? { compat } : {}), ...(clientFilter ? { clientFilter } : {}), ...(serverDumpable ? { serverDumpable } : {}), errorErrno, unknownAction,
    global, session, roles, databases, processes, ...(walsenderWithDatabase ? { walsenderWithDatabase } : {}), ...(programs ? { programs } : {}),
    ...(hardening ? { hardening } : {}), ...(serverSettings ? { serverSettings } : {}), notes: s.notes, files,
  };
}

/** Every setting known (an unknown one is an error), by canonical name; the last one wins, as in postgresql.conf, and an override is worth a note. */
function settingsByName(settings: readonly ConfSetting[], files: string[]): Settings {
  const notes: PolicyNote[] = [];
  const byName = new Map<string, Setting>();
  const earlierFiles = new Set<string>();
  let seen = 0;
  for (const s of settings) {
    const name = canonicalSuffix(s.name.startsWith("pgseccomp.") ? s.name.slice("pgseccomp.".length) : s.name);
    if (name === "shared_preload_libraries") {
      notes.push({ loc: s.loc, message: "shared_preload_libraries is ignored: pg_seccomp needs no library in the server" });
      continue;
    }
    if (/^[a-z_]+_syscall_harden(\..*)?$/.test(name)) {
      throw new PolicyError(s.loc, `hardening presets apply to every process: there is no "${s.name}"`, "write syscall_harden = '...' (see \"Hardening presets\" in docs/policy.md)");
    }
    if (name.startsWith("server_setting.") && !SERVER_SETTING.test(name)) {
      throw new PolicyError(s.loc, `"${s.name}" does not name a PostgreSQL setting`, "write server_setting.<name> = 'value', e.g. server_setting.archive_command = '...'");
    }
    if (!LIST_SETTING.test(name) && !SERVER_SETTING.test(name) && !KNOWN_SETTINGS.includes(name)) {
      const maybe = suggestNames(KNOWN_SETTINGS, name);
      throw new PolicyError(s.loc, `unknown setting "${s.name}"`, maybe.length ? `did you mean "${maybe[0]}"?` : "see `pg_seccomp help policy` for the settings");
    }
    if (name === "enabled" && !s.name.startsWith("pgseccomp.")) {
      throw new PolicyError(s.loc, `unknown setting "enabled"`, `write "seccomp = on" or "pgseccomp.enabled = on"`);
    }
    const prev = byName.get(name);
    const order = seen++;
    const afterInclude = earlierFiles.size > (earlierFiles.has(s.loc.file) ? 1 : 0);
    earlierFiles.add(s.loc.file);
    if (prev && !LIST_SETTING.test(name)) notes.push({ loc: s.loc, message: `${s.name} overrides the value set at ${prev.setting.loc.file}:${prev.setting.loc.line}` });
    else if (prev && !isExtension(s.value)) notes.push({ loc: s.loc, message: `${s.name} replaces the list set at ${prev.setting.loc.file}:${prev.setting.loc.line}; to add to it, begin the list with '*' ('*, name')` });
    byName.set(name, { value: s.value, setting: s, order, afterInclude, ...(prev ? { previous: prev } : {}) });
  }
  return { byName, get: (n) => byName.get(n), notes, start: { file: files[0] ?? "<policy>", line: 1, column: 1 } };
}

/** pgseccomp mode: set by `compat`, or by any pgseccomp.* name when compat is not set. */
function compatMode(settings: readonly ConfSetting[], s: Settings): Compat {
  const compatSetting = s.get("compat");
  if (!compatSetting) return settings.some((x) => x.name.startsWith("pgseccomp.")) ? "pgseccomp" : undefined;
  const v = compatSetting.value.trim().toLowerCase();
  if (v === "pgseccomp") return "pgseccomp";
  if (v === "none" || v === "off" || v === "") return undefined;
  throw new PolicyError(compatSetting.setting.valueLoc, `compat = "${compatSetting.value}" is not known`, "write compat = pgseccomp (CrunchyData/pgseccomp's defaults and rules) or compat = none (the seed's)");
}

/** seccomp / pgseccomp.enabled: pgseccomp.enabled defaults to off in pgseccomp; the seed's seccomp to on. */
function enabledSetting(s: Settings, compat: Compat): boolean {
  const enabledSetting = s.get("seccomp") ?? s.get("enabled");
  if (!enabledSetting && compat === "pgseccomp") {
    s.notes.push({ loc: s.start, message: "pgseccomp.enabled is not set: off, as in pgseccomp, so no filter is installed; set pgseccomp.enabled = on" });
  }
  return enabledSetting ? parseBool(enabledSetting) : compat !== "pgseccomp";
}

/** syscall_error_errno and syscall_unknown_action. */
function errnoAndUnknown(s: Settings): { errorErrno: number; unknownAction: Action | "default" } {
  const errnoSetting = s.get("syscall_error_errno");
  const errorErrno = errnoSetting ? parseAction(`error:${errnoSetting.value}`, DEFAULT_ERROR_ERRNO, errnoSetting.setting.valueLoc).errno! : DEFAULT_ERROR_ERRNO;
  const unknownSetting = s.get("syscall_unknown_action");
  if (!unknownSetting) return { errorErrno, unknownAction: DEFAULT_UNKNOWN_ACTION };
  const unknownAction = unknownSetting.value.trim().toLowerCase() === "default"
    ? "default"
    : parseAction(unknownSetting.value, errorErrno, unknownSetting.setting.valueLoc);
  return { errorErrno, unknownAction };
}

/** global_syscall_default must be set (pgseccomp mode: allow when it is not, with a note). */
function requireGlobalDefault(settings: readonly ConfSetting[], s: Settings, compat: Compat, files: string[]): void {
  if (s.get("global_syscall_default")) return;
  if (compat === "pgseccomp") {
    s.notes.push({ loc: s.start, message: "global_syscall_default is not set: allow, as in pgseccomp" });
    return;
  }
  const anyList = settings.find((x) => LIST_SETTING.test(x.name.replace(/^pgseccomp\./, "")));
  throw new PolicyError(
    anyList?.loc ?? (files[0] ? { file: files[0], line: 1, column: 1 } : undefined),
    "global_syscall_default is not set",
    "say what happens to syscalls that no list names: global_syscall_default = 'error' (or allow, log, kill)",
  );
}

const ALLOW_DEFAULT: Action = { kind: "allow" };

function globalAndSession(s: Settings, compat: Compat, errorErrno: number): { global: FilterSpec; session: FilterSpec } {
  const global = buildFilter("global", "global", s.get, s.notes, errorErrno, undefined, compat ? ALLOW_DEFAULT : undefined);
  // pgseccomp: a session default that is not set is allow (so a narrower session list alone
  // changes nothing); the seed's: the global default.
  const session = buildFilter("session", "session", s.get, s.notes, errorErrno, { inheritFrom: global, global }, compat ? ALLOW_DEFAULT : undefined);
  return { global, session };
}

/** session_roles, read as PostgreSQL reads a list of role names (identifiers.ts); undefined when not set. */
function listedRoles(s: Settings, compat: Compat): string[] | undefined {
  const rolesSetting = s.get("session_roles");
  if (!rolesSetting) return undefined;
  const ids = splitIdentifierString(rolesSetting.value);
  if (ids === null) {
    throw new PolicyError(rolesSetting.setting.valueLoc, `session_roles "${rolesSetting.value}" is not a list of role names${compat ? " (pgseccomp would warn and use its built-in empty list)" : ""}`, `write role names separated by commas; quote a name that has upper-case letters or other characters: '"Alice", bob'`);
  }
  return ids.map((i) => i.name);
}

/**
 * The settings that carry a suffix: a role's (session_syscall_*.<role>), by the role name its
 * suffix stands for (unquoted: folded to lower case; quoted: as written), and the databases
 * named (database_syscall_*.<db>). pgseccomp looks roles up by name, which PostgreSQL compares
 * ignoring case: in compat mode a role matches a suffix whatever the case.
 */
function suffixedSettings(s: Settings, compat: Compat): { roleSettings: Map<string, Setting[]>; dbNames: Set<string> } {
  const roleSettings = new Map<string, Setting[]>();
  const dbNames = new Set<string>();
  for (const [name, x] of s.byName) {
    const m = LIST_SETTING.exec(name);
    if (!m) continue;
    const [, kind, , suffix] = m;
    if (kind === "program") {
      if (suffix === undefined || !(PROGRAM_PARENTS as readonly string[]).includes(suffix)) {
        throw new PolicyError(x.setting.loc, `"${x.setting.name}" must name the kind of process that runs the programs: archiver, startup or session`, `write program_syscall_${m[2]}.archiver (archive_command), .startup (restore_command, ...) or .session (COPY ... PROGRAM, a PL's system())`);
      }
      continue;
    }
    if (kind === "database") {
      if (suffix === undefined) {
        throw new PolicyError(x.setting.loc, `"${x.setting.name}" needs a database name`, `write database_syscall_${m[2]}.<database> = '...'`);
      }
      dbNames.add(unquoteSuffix(suffix));
      continue;
    }
    if (suffix === undefined) continue;
    if (kind !== "session") {
      throw new PolicyError(x.setting.loc, `per-role settings exist only for session lists, not "${x.setting.name}"`, `write session_syscall_${m[2]}.${suffix}`);
    }
    const role = unquoteSuffix(suffix);
    const raw = (x.setting.rawName ?? "").replace(/^[^.]*\.(?:[^.]*\.)?/, "");
    if (!compat && !suffix.startsWith('"') && raw !== role && raw.toLowerCase() === role) {
      s.notes.push({ loc: x.setting.loc, message: `${x.setting.rawName} names role "${role}": unquoted names fold to lower case, as in PostgreSQL; for a role created as "${raw}" write ${x.setting.name.replace(/\.[^.]*$/, "")}.${quoteIdentifier(raw)}` });
    }
    const list = roleSettings.get(role) ?? [];
    list.push(x);
    roleSettings.set(role, list);
  }
  return { roleSettings, dbNames };
}

/** A filter for each role session_roles lists (or, outside compat mode without session_roles, that has settings); a note for settings that can never apply. */
function roleFilters(
  s: Settings, compat: Compat, errorErrno: number,
  { listed, roleSettings }: { listed: string[] | undefined; roleSettings: Map<string, Setting[]> },
  { global, session }: { global: FilterSpec; session: FilterSpec },
): Map<string, FilterSpec> {
  const roleNames = new Set<string>(listed ?? []);
  const listedText = listed ? listed.map(quoteIdentifier).join(", ") : "";
  for (const [role, ss] of roleSettings) {
    const matches = compat ? (listed ?? []).filter((r) => r.toLowerCase() === role.toLowerCase()) : listed === undefined || listed.includes(role) ? [role] : [];
    if (matches.length > 0) {
      if (!compat) roleNames.add(role);
      continue;
    }
    const near = (listed ?? []).find((r) => r.toLowerCase() === role.toLowerCase());
    for (const x of ss) {
      const why = compat && !listed
        ? "pgseccomp reads per-role settings only for the roles pgseccomp.session_roles lists, and it is not set"
        : `session_roles (${listedText}) does not list role "${role}"`;
      const hint = near !== undefined ? `; for the role "${near}" write ${x.setting.name.replace(/\.[^.]*$/, "")}.${quoteIdentifier(near)}` : "";
      s.notes.push({ loc: x.setting.loc, message: `${x.setting.rawName ?? x.setting.name} can never apply: ${why}, so it is ignored${hint}` });
    }
  }
  const roles = new Map<string, FilterSpec>();
  for (const role of [...roleNames].sort()) {
    // compat: the settings whose suffix equals the role's name ignoring case (pgseccomp's lookup).
    const key = compat ? [...roleSettings.keys()].find((k) => k.toLowerCase() === role.toLowerCase()) : role;
    const pattern = `session_syscall_%.${quoteIdentifier(key ?? role)}`;
    roles.set(role, buildFilter(`session.${role}`, pattern, s.get, s.notes, errorErrno, { inheritFrom: session, global }, undefined, compat));
  }
  return roles;
}

function databaseFilters(s: Settings, errorErrno: number, dbNames: Set<string>, global: FilterSpec): Map<string, FilterSpec> {
  const databases = new Map<string, FilterSpec>();
  for (const db of [...dbNames].sort()) {
    databases.set(db, buildFilter(`database.${db}`, `database_syscall_%.${quoteIdentifier(db)}`, s.get, s.notes, errorErrno, { inheritFrom: global, global }));
  }
  return databases;
}

/**
 * A process kind gets a filter only when some setting names it (a note for a kind not in every
 * major). A kind that runs SQL (but the parallel worker, which always has its leader's session
 * filters as well) inherits from the session filter: a list it does not set, and '*'
 * in one it sets, are the session's, so `autovacuum_worker_syscall_error = '*, ptrace'` keeps the
 * session's execve denial; only what it names itself opens anything.
 */
function processFilters(s: Settings, errorErrno: number, global: FilterSpec, session: FilterSpec): { processes: Map<ProcessKind, FilterSpec>; walsenderWithDatabase?: FilterSpec } {
  const processes = new Map<ProcessKind, FilterSpec>();
  let walsenderWithDatabase: FilterSpec | undefined;
  const fromSession = { inheritFrom: session, global: session, starIsGlobal: session.globalLists };
  for (const kind of PROCESS_KINDS) {
    const named = [...s.byName.keys()].find((n) => n.startsWith(`${kind}_syscall_`));
    if (!named) continue;
    if (kind === "walsender") {
      processes.set(kind, buildFilter(kind, kind, s.get, s.notes, errorErrno, { inheritFrom: global, global }));
      walsenderWithDatabase = buildFilter(kind, kind, s.get, s.notes, errorErrno, fromSession);
    } else {
      // A parallel worker always has its leader's session filters stacked on its own (decision.ts).
      const opensAlone = isSqlKind(kind) && kind !== "parallel_worker";
      processes.set(kind, buildFilter(kind, kind, s.get, s.notes, errorErrno, opensAlone ? fromSession : { inheritFrom: global, global }));
    }
    const m = KIND_MAJORS[kind];
    if (m) s.notes.push({ loc: s.byName.get(named)!.setting.loc, message: `${kind}: ${m.what} exists in ${kindMajorsText(kind)} only; on other servers this setting applies to no process` });
  }
  return { processes, ...(walsenderWithDatabase ? { walsenderWithDatabase } : {}) };
}

/**
 * server_setting.<name> = 'value': settings `run` pins on postgres's command line. A setting a
 * superuser can SET stays changeable per session and per role: that is worth a note.
 */
function pinnedServerSettings(s: Settings): Map<string, { value: string; loc: SourceLoc }> | undefined {
  const out = new Map<string, { value: string; loc: SourceLoc }>();
  for (const [name, x] of s.byName) {
    const m = SERVER_SETTING.exec(name);
    if (!m) continue;
    const guc = m[1]!;
    if (x.value.includes("\0")) throw new PolicyError(x.setting.valueLoc, `the value of ${x.setting.name} has a NUL byte`, "write the value without it");
    out.set(guc, { value: x.value, loc: x.setting.loc });
    const ctx = CODE_SETTINGS[guc];
    if (ctx === "suset" || ctx === "user") {
      s.notes.push({ loc: x.setting.loc, message: `${guc} is pinned against ALTER SYSTEM and the configuration files, but a ${ctx === "suset" ? "superuser" : "role"} can still SET it in a session or with ALTER ROLE/DATABASE ... SET (PostgreSQL gives those precedence over the command line)` });
    }
  }
  return out.size > 0 ? out : undefined;
}

/**
 * program_syscall_*.<parent>: the lists of the programs a parent kind runs. A list or default
 * not set, and '*', are the parent's (the session's for session; the archiver's or startup's
 * overlay, or the global filter), so a program gets what its parent has but what it names.
 */
function programFilters(s: Settings, errorErrno: number, global: FilterSpec, session: FilterSpec, processes: Map<ProcessKind, FilterSpec>): Map<ProgramParent, FilterSpec> | undefined {
  const out = new Map<ProgramParent, FilterSpec>();
  for (const parent of PROGRAM_PARENTS) {
    if (![...s.byName.keys()].some((n) => n.startsWith("program_syscall_") && n.endsWith(`.${parent}`))) continue;
    const from = parent === "session" ? session : processes.get(parent) ?? global;
    const overlay = from === global ? { inheritFrom: global, global } : { inheritFrom: from, global: from, starIsGlobal: from.globalLists };
    out.set(parent, buildFilter(`program.${parent}`, `program_syscall_%.${parent}`, s.get, s.notes, errorErrno, overlay));
  }
  return out.size > 0 ? out : undefined;
}

function hardeningPresets(s: Settings): Hardening | undefined {
  const hardenSetting = s.get("syscall_harden");
  return hardenSetting ? parseHardening(hardenSetting.value, hardenSetting.setting.valueLoc, hardenSetting.setting.loc) : undefined;
}

/** set_client_filter: off by default (its knock takes lseek out of the kernel's cache); on in pgseccomp mode, where the function is always there for pgseccomp's users. */
function clientFilterOn(s: Settings, compat: Compat): boolean {
  const clientFilterSetting = s.get("set_client_filter");
  return clientFilterSetting ? parseBool(clientFilterSetting) : compat === "pgseccomp";
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
  notes: PolicyNote[],
  errorErrno: number,
  /**
   * `global` is what '*' stands for (the session filter for a kind that runs SQL); then
   * `starIsGlobal` says which of its lists are the global ones.
   */
  overlay: { inheritFrom: FilterSpec; global: FilterSpec; starIsGlobal?: Set<ActionKind> | undefined } | undefined,
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
  const orderOf = new Map<PolicyEntry, number>();
  for (const action of ACTION_KINDS) {
    const s = setting(action);
    const starGlobal = !overlay?.starIsGlobal || overlay.starIsGlobal.has(action);
    if ((s && isGlobalStar(s) && starGlobal) || (!s && overlay && ((overlay.inheritFrom === overlay.global && starGlobal) || overlay.inheritFrom.globalLists?.has(action)))) globalLists.add(action);
    if (!s) {
      if (overlay) {
        entries.push(
          ...overlay.inheritFrom.entries.filter((e) => e.action.kind === action).map((e) => ({ ...e, inheritedFrom: e.inheritedFrom ?? e.loc })),
        );
      }
      continue;
    }
    for (const { entry, order } of listEntries(s, action, errorErrno, overlay?.global)) {
      entries.push(entry);
      orderOf.set(entry, order);
    }
  }
  notes.push(...laterFileWins(name, entries, orderOf));
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

/** A list value that extends the earlier value: it has a '*' entry. */
function isExtension(value: string): boolean {
  return value.split(",").some((p) => p.trim() === "*");
}

/** '*' alone, meaning the global list all the way down (no earlier value of this setting gives it anything else). */
function isGlobalStar(s: Setting): boolean {
  return s.value.trim() === "*" && (s.previous === undefined || isGlobalStar(s.previous));
}

/**
 * The entries of one list setting, each with the reading order of the setting that wrote it.
 * '*' is the value this setting had before (an included file's: its entries keep their file and
 * line); where nothing set it before, the global list in an overlay, and in a global list the
 * empty list when this file extends an included one (else an error: there is nothing to extend).
 */
function listEntries(s: Setting, action: ActionKind, errorErrno: number, global: FilterSpec | undefined): Array<{ entry: PolicyEntry; order: number }> {
  const out: Array<{ entry: PolicyEntry; order: number }> = [];
  for (const e of parseList(s.value, s.setting.valueLoc)) {
    if (e.kind === "inherit") {
      if (s.previous) {
        out.push(...listEntries(s.previous, action, errorErrno, global));
        continue;
      }
      if (global) {
        out.push(...inheritList(global, action, e.loc).map((entry) => ({ entry, order: s.order })));
        continue;
      }
      if (s.afterInclude) continue; // nothing before gave this list a value: it was empty
      throw new PolicyError(e.loc, `"*" means "the list as set before" (in an overlay list: the global list), and ${s.setting.name} is not set before this line`, `list the syscalls, or write '' for an empty list; in a file that includes another, '*' extends the included file's value: include it first`);
    }
    if (e.errno !== undefined && !hasErrno(action)) {
      throw new PolicyError(e.loc, `"${e.text}" gives an errno in the ${action} list`, `an errno belongs only in an error list (or a terminate list): move it to the error list`);
    }
    const act: Action = hasErrno(action) ? { kind: action, errno: e.errno ?? errorErrno } : { kind: action };
    out.push({ entry: { ...e, action: act }, order: s.order });
  }
  return out;
}

/**
 * A syscall named in two lists of one filter by different files: the later file's entry wins
 * (as the last setting wins in postgresql.conf) and the earlier one is dropped, with a note, so
 * that `include 'base.conf'` + `global_syscall_log = '*, ptrace'` moves ptrace out of base.conf's
 * kill list. Within one file it stays an error (checkEntries): there it is a mistake.
 */
function laterFileWins(filter: string, entries: PolicyEntry[], orderOf: ReadonlyMap<PolicyEntry, number>): PolicyNote[] {
  const notes: PolicyNote[] = [];
  const own = entries.filter((e) => e.kind === "syscall" && e.conditions.length === 0 && !e.inheritedFrom && orderOf.has(e));
  const byName = new Map<string, PolicyEntry[]>();
  for (const e of own) byName.set(e.name, [...(byName.get(e.name) ?? []), e]);
  const drop = new Set<PolicyEntry>();
  for (const [name, es] of byName) {
    if (new Set(es.map((e) => e.action.kind)).size < 2) continue;
    const last = es.reduce((a, b) => (orderOf.get(b)! > orderOf.get(a)! ? b : a));
    for (const e of es) {
      if (e.action.kind === last.action.kind || e.loc.file === last.loc.file) continue;
      drop.add(e);
      notes.push({ loc: last.loc, message: `${name} is in the ${last.action.kind} list here: it leaves the ${e.action.kind} list of the ${filter} filter set at ${e.loc.file}:${e.loc.line} (a later file wins)` });
    }
  }
  if (drop.size) entries.splice(0, entries.length, ...entries.filter((e) => !drop.has(e)));
  return notes;
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

