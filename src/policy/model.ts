// A policy as data: what a policy file says, interpreted (build.ts makes one from the settings),
// and the process kinds that can have a filter of their own.

import type { PolicyNote, SourceLoc } from "./errors.js";
import { ACTION_KINDS, type Action, type ActionKind } from "./actions.js";
import type { ListEntry } from "./entries.js";
import type { IncludePlace } from "./conf.js";
import { errnoNumber } from "../syscalls/errno.js";
import type { Hardening, PresetName } from "./harden.js";

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
  /** Off only because pgseccomp.enabled is not set (pgseccomp's default), not said: `run` refuses it. */
  offByDefault?: true;
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
  /**
   * Overlays for the postmaster and each backend type (postmaster_syscall_*, checkpointer_syscall_*,
   * ...). A kind that runs SQL (SQL_KINDS) takes its unset lists and default from the session
   * filter, other kinds from the global one.
   */
  processes: Map<ProcessKind, FilterSpec>;
  /**
   * walsender_syscall_* for walsenders connected to a database (replication=database), which run
   * SQL: built like an SQL kind's (unset lists are the session's). processes.get("walsender") is
   * the same settings for physical walsenders, unset lists being the global ones.
   */
  walsenderWithDatabase?: FilterSpec;
  /**
   * program_syscall_<action>.<parent>: the lists of programs the server runs (after their exec),
   * by the kind of process that started them: the archiver (archive_command), the startup
   * process (restore_command, recovery_end_command, archive_cleanup_command) or a session
   * (COPY ... PROGRAM, a PL's system()). Unset lists are the parent's. Absent when the policy
   * has none: a program then has its parent's context.
   */
  programs?: Map<ProgramParent, FilterSpec>;
  /**
   * set_client_filter = on: `run` lets sessions narrow themselves with set_client_filter(), at
   * the cost of one argument check on lseek's path in the installed program (lseek then leaves
   * the kernel's constant-action cache). Absent or false: off, the default.
   */
  clientFilter?: boolean;
  /**
   * server_dumpable = on: leave the server's processes dumpable (core dumps as the server's
   * user, /proc/PID/mem and ptrace between them). Absent or false, the default: `run` makes
   * the postmaster non-dumpable before its first instruction, and every process it forks inherits it.
   */
  serverDumpable?: boolean;
  /**
   * Hardening presets (syscall_harden): one filter per preset, stacked on every context. Absent
   * when the policy sets none.
   */
  hardening?: Hardening;
  /**
   * server_setting.<name> = 'value': PostgreSQL settings `run` pins on postgres's command line
   * (`-c name=value`), where ALTER SYSTEM and the configuration files cannot change them. By
   * name (lower case, as PostgreSQL compares names); absent when the policy pins none.
   */
  serverSettings?: Map<string, { value: string; loc: SourceLoc }>;
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

/**
 * The kinds whose processes run SQL a superuser can write (a function in an expression index runs
 * in autovacuum's ANALYZE, a parallel-safe one in a parallel worker, a trigger in a logical
 * replication worker, a pg_cron job in a background worker; a walsender with a database runs any
 * SQL): they get the session's lists unless the policy gives them lists of their own on purpose
 * (docs/policy.md, "What a session is"). The walsender counts only with a database. A parallel
 * worker always has its leader's session filters; its own settings only add to them.
 */
export const SQL_KINDS = ["walsender", "autovacuum_worker", "parallel_worker", "background_worker", "logical_replication_worker"] as const satisfies readonly ProcessKind[];
export type SqlKind = (typeof SQL_KINDS)[number];

export function isSqlKind(kind: string): kind is SqlKind {
  return (SQL_KINDS as readonly string[]).includes(kind);
}

/** What SQL a kind runs, for the warnings about a kind the policy opens beyond the session's lists. */
export const SQL_KIND_ROUTES: Readonly<Record<SqlKind, string>> = {
  walsender: "any SQL sent over a replication=database connection",
  autovacuum_worker: "functions in expression and partial indexes, which autovacuum's ANALYZE and VACUUM evaluate",
  parallel_worker: "parallel-safe functions of a query run in parallel (debug_parallel_query = on forces it)",
  background_worker: "SQL that background workers run (pg_cron jobs and the like)",
  logical_replication_worker: "triggers and functions a subscriber runs while applying changes",
};

/** The parents whose programs can have lists of their own (program_syscall_*.<parent>). */
export const PROGRAM_PARENTS = ["archiver", "startup", "session"] as const;
export type ProgramParent = (typeof PROGRAM_PARENTS)[number];
/** The context of a program each parent runs: "archiver_program", ... */
export const PROGRAM_KINDS = ["archiver_program", "startup_program", "session_program"] as const;
export type ProgramKind = (typeof PROGRAM_KINDS)[number];

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


/**
 * Server settings that choose code or programs the server runs: what a policy should pin
 * (docs/policy.md, "Pinned server settings"). With the PostgreSQL context of each: a setting a
 * superuser can SET (suset, user) stays changeable per session and per role even when pinned.
 */
export const CODE_SETTINGS: Readonly<Record<string, "postmaster" | "sighup" | "suset" | "user">> = {
  archive_command: "sighup",
  archive_library: "sighup",
  restore_command: "sighup",
  archive_cleanup_command: "sighup",
  recovery_end_command: "sighup",
  shared_preload_libraries: "postmaster",
  session_preload_libraries: "suset",
  local_preload_libraries: "user",
  dynamic_library_path: "suset",
  jit_provider: "postmaster",
  io_method: "postmaster",
  ssl_passphrase_command: "sighup",
};
