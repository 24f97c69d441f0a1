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

