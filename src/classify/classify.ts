// Which context a server process belongs to, from its process title. PostgreSQL sets the title
// of every child right after fork ("postgres: checkpointer", "postgres: alice sales [local]
// idle"); until then a child shows the postmaster's command line and is unclassified. Once a
// process is classified its context is pinned for its life (pid + start time), so that a
// process cannot talk itself into another context later by changing its title. Only the
// postmaster's own children are classified by title; anything they start (a fork that execs
// COPY's program, a shell) gets its parent's context, whatever its title says.

import type { ContextSpec } from "../policy/decision.js";
import { isSqlKind, type Policy, type ProcessKind } from "../policy/policy.js";
import { parseProcessTitle, TITLE_PREFIX } from "../postgres/process-title.js";
import { parseProcStat, type ProcReader } from "../host/proc.js";

export interface ParsedTitle {
  context: ContextSpec["context"];
  role?: string;
  database?: string;
  /** For a parallel worker: its leader's pid. */
  leaderPid?: number;
}

/** pg_stat_activity backend_type (as the title parser names it) → the policy's process kind. */
const KINDS: Readonly<Record<string, ProcessKind>> = {
  checkpointer: "checkpointer",
  "background writer": "background_writer",
  walwriter: "walwriter",
  "autovacuum launcher": "autovacuum_launcher",
  "autovacuum worker": "autovacuum_worker",
  "logical replication launcher": "logical_replication_launcher",
  "logical replication worker": "logical_replication_worker",
  "logical replication apply worker": "logical_replication_worker",
  "logical replication tablesync worker": "logical_replication_worker",
  "logical replication parallel worker": "logical_replication_worker",
  archiver: "archiver",
  startup: "startup",
  walreceiver: "walreceiver",
  walsender: "walsender",
  logger: "logger",
  "background worker": "background_worker",
  // PostgreSQL 14's statistics collector: no pg_stat_activity row, known by its title.
  "stats collector": "stats_collector",
  // PostgreSQL 17.
  walsummarizer: "walsummarizer",
  "slotsync worker": "slotsync_worker",
  // PostgreSQL 18 (io_method = worker).
  "io worker": "io_worker",
};

/**
 * The context a process title puts a process in (the title as /proc/PID/cmdline gives it, NULs
 * or spaces). Undefined for a title that is not a PostgreSQL child's (the postmaster's own
 * command line, a child that has not set its title yet, an exec'd program). Client titles are
 * recognised before fixed ones, so a role called "archiver" is still a client.
 */
export function contextOfTitle(title: string): ParsedTitle | undefined {
  const t = parseProcessTitle(title.replace(/\0+$/, ""));
  switch (t.backendType) {
    case "client backend":
      return { context: "session", ...(t.role !== undefined ? { role: t.role } : {}), ...(t.database !== undefined ? { database: t.database } : {}) };
    case "parallel worker":
      return { context: "parallel_worker", ...(t.leaderPid !== undefined ? { leaderPid: t.leaderPid } : {}) };
    default: {
      const kind = KINDS[t.backendType];
      // A PostgreSQL title of a type we do not know (an extension's worker, a later major's
      // process) counts as a background worker; not PostgreSQL's at all: no context of its own.
      if (kind) return { context: kind };
      return t.title.startsWith(TITLE_PREFIX) ? { context: "background_worker" } : undefined;
    }
  }
}

/**
 * The context of a program a server process runs (after its exec), from its parent's context:
 * the parent's program lists when the policy has them (program_syscall_*.<parent>), else
 * undefined (the program has its parent's context). Every kind that runs SQL starts session
 * programs (COPY ... PROGRAM, a PL's system()); the archiver archive_command's; the startup
 * process restore_command's, recovery_end_command's and archive_cleanup_command's.
 */
export function programContextFor(policy: Pick<Policy, "programs">, parent: ContextSpec): ContextSpec | undefined {
  const programs = policy.programs;
  if (!programs) return undefined;
  if ((parent.context === "archiver" || parent.context === "startup") && programs.has(parent.context)) return { context: `${parent.context}_program` };
  const sql = parent.context === "session" || parent.context === "parallel_worker" || (isSqlKind(parent.context) && (parent.context !== "walsender" || parent.database !== undefined));
  if (sql && programs.has("session")) {
    return { context: "session_program", ...(parent.role !== undefined ? { role: parent.role } : {}), ...(parent.database !== undefined ? { database: parent.database } : {}) };
  }
  return undefined;
}

/** The files of /proc the classifier reads (src/host/proc.ts; tests give a fake). */
export type ClassifierProc = Pick<ProcReader, "cmdline" | "stat">;

/**
 * The context of each server process as `status` shows it. With the launcher's own record of
 * what it pinned (`launcherPins`, from the run state), a child of the postmaster has exactly the
 * context the supervisor decides its calls in (unclassified until pinned). Without one (a server
 * pg_seccomp run did not start, so no supervisor answers anything), titles give an estimate.
 */
export class Classifier {
  private pins = new Map<number, { start: string; ctx: ContextSpec; source: number }>();

  constructor(
    private readonly postmasterPid: number,
    private readonly proc: ClassifierProc,
    private readonly launcherPins?: ReadonlyMap<number, { start: string; ctx: ContextSpec }>,
  ) {}

  classify(pid: number, depth = 0): ContextSpec {
    return this.classifyWithSource(pid, depth).ctx;
  }

  /**
   * The context and the pid whose title decided it (for a program a backend exec'd: the
   * backend), so that the log can look that backend up in pg_stat_activity.
   */
  classifyWithSource(pid: number, depth = 0): { ctx: ContextSpec; source: number } {
    if (pid === this.postmasterPid) return { ctx: { context: "postmaster" }, source: pid };
    const st = parseProcStat(this.proc.stat(pid) ?? "");
    if (st?.start === undefined) return { ctx: { context: "unclassified" }, source: pid };
    const pin = this.pins.get(pid);
    if (pin && pin.start === st.start) return { ctx: pin.ctx, source: pin.source };
    let ctx: ContextSpec | undefined;
    let source = pid;
    if (st.ppid !== this.postmasterPid) {
      // Not a child of the postmaster: a process some server process started (a fork that
      // will exec COPY's program, a shell, archive_command). Its parent's context decides,
      // whatever its own title says.
      if (st.ppid <= 1 || depth >= 32) return { ctx: { context: "unclassified" }, source: pid };
      const parent = this.classifyWithSource(st.ppid, depth + 1);
      if (parent.ctx.context !== "unclassified") {
        ctx = parent.ctx;
        source = parent.source;
      }
    } else if (this.launcherPins) {
      const pinned = this.launcherPins.get(pid);
      if (pinned && pinned.start === st.start) ctx = pinned.ctx;
    } else {
      const title = (this.proc.cmdline(pid) ?? "").replace(/\0+$/, "").replace(/\0/g, " ");
      const parsed = contextOfTitle(title);
      if (parsed) {
        ctx = { context: parsed.context, ...(parsed.role ? { role: parsed.role } : {}), ...(parsed.database ? { database: parsed.database } : {}) };
        if (parsed.leaderPid !== undefined && depth < 8) {
          const leader = this.classify(parsed.leaderPid, depth + 1);
          if (leader.context === "session") ctx = { context: "parallel_worker", ...(leader.role ? { role: leader.role } : {}), ...(leader.database ? { database: leader.database } : {}) };
        }
      }
    }
    if (!ctx) return { ctx: { context: "unclassified" }, source: pid }; // e.g. a child that has not set its title yet
    this.pins.set(pid, { start: st.start, ctx, source });
    return { ctx, source };
  }
}

/** A child's row of the server's own pg_stat_activity (pg_stat_get_activity), by OID-resolved names. */
export interface ActivityRow {
  backendType: string;
  /** pg_authid.rolname of usesysid, and pg_database.datname of datid (never parsed from a title). */
  role?: string;
  database?: string;
}

/** What the launcher knows about a child of the postmaster when it classifies it. */
export interface ChildFacts {
  /**
   * The held call that asked brings new code into the process (an executable mapping, an exec):
   * a background worker without a row is pinned then, and only then (classifyChild).
   */
  entersCode?: boolean;
  /**
   * The pg_stat_activity row; "none" when the monitoring connection is up and the server has no
   * row for the pid (a backend still authenticating, the logger); undefined when the monitoring
   * connection is not up (the server is starting).
   */
  activity: ActivityRow | "none" | undefined;
  /** The kernel's word: the process holds a connection accepted on one of the server's listen sockets. */
  clientConnection: boolean;
  /** The process title: a fallback only for processes without a client connection and without a row. */
  title: string;
  /**
   * The process was forked after the server was ready (or that cannot be told): its title is
   * never a source. Code in a backend can rewrite its title; only processes the postmaster forked
   * before any client could reach it run nothing but the postmaster's code.
   */
  forkedAfterReady?: boolean;
  /**
   * The user and database names the process itself keeps from its startup packet (its private
   * memory, which no other server process can write: src/host/backend-identity.ts), read for a
   * process with a client connection; "unreadable" when they could not be read; undefined when
   * the launcher has no reader for this server (the row alone decides).
   */
  startupNames?: { user: string | null; database: string | null; walsender: boolean } | "unreadable";
  /**
   * For a process without a client connection: the backend type it keeps in its own memory
   * (`MyBackendType`, named as rows name types, "background worker" for any background worker),
   * read with its row, or without one when the server has none for it; "unreadable" when it
   * could not be read; undefined when there is no reader (the row decides).
   */
  ownBackendType?: string | "unreadable";
}

/** Row types that are a process kind of their own in MyBackendType; every other type a row shows without a client connection is a background worker's. */
const OWN_TYPES = new Set(["checkpointer", "background writer", "walwriter", "autovacuum launcher", "autovacuum worker", "archiver", "startup", "walreceiver", "walsummarizer", "slotsync worker", "io worker", "logger", "stats collector"]);

/**
 * Does the row's type agree with the type the process keeps in its own memory
 * (ChildFacts.ownBackendType)? The row's is as writable by other backends as its role: a
 * parallel worker whose row says "archiver" would get the archiver's context.
 */
function typeMismatch(rowType: string, own: ChildFacts["ownBackendType"]): ChildClassification | undefined {
  if (own === undefined) return undefined;
  if (own === "unreadable") return { ctx: UNCLASSIFIED, pin: false, note: "alarm: its own backend type cannot be read to confirm the server's row" };
  const expected = OWN_TYPES.has(rowType) ? rowType : "background worker";
  if (own === expected) return undefined;
  return { ctx: UNCLASSIFIED, pin: true, note: `inconsistent: the server's row says ${JSON.stringify(rowType.slice(0, 64))}, the process is a ${own}` };
}

/**
 * Does the row name what the process itself says it logged in as? The row is shared memory any
 * server process can write; the startup names are not (ChildFacts.startupNames), nor whether it
 * asked for replication. A physical walsender has no database (the row none, the Port "" or NULL).
 */
function rowMismatch(row: ActivityRow, names: ChildFacts["startupNames"]): ChildClassification | undefined {
  if (names === undefined) return undefined;
  // Not pinned: the next call that needs the context asks again.
  if (names === "unreadable") return { ctx: UNCLASSIFIED, pin: false, note: "alarm: its own record of who it logged in as cannot be read to confirm the server's row" };
  const inconsistent = (note: string): ChildClassification => ({ ctx: UNCLASSIFIED, pin: true, note: `inconsistent: ${note}` });
  const quote = (x: string | null | undefined) => (x === null || x === undefined || x === "" ? "none" : JSON.stringify(x.slice(0, 64)));
  // Client backend or walsender: the kernel cannot tell them apart, the row's type is writable,
  // and a walsender with a database gets the walsender's lists, not the session's.
  const rowWalsender = row.backendType === "walsender";
  if (rowWalsender !== names.walsender) return inconsistent(rowWalsender ? `the server's row says "walsender", the process did not ask for replication` : `the server's row says "${row.backendType}", the process asked for replication`);
  if (names.user !== row.role) return inconsistent(`the server's row names role ${quote(row.role)}, the process logged in as ${quote(names.user)}`);
  const database = names.database === "" ? null : names.database;
  if ((database ?? undefined) !== row.database) return inconsistent(`the server's row names database ${quote(row.database)}, the process connected to ${quote(database)}`);
  return undefined;
}

const CLIENT_TYPES = new Set(["client backend", "walsender"]);

export interface ChildClassification {
  ctx: ContextSpec;
  pin: boolean;
  note?: string;
  /**
   * Not pinned, and right only for calls that bring no new code: a call that does must ask again
   * with entersCode (then it pins). A background worker before its row.
   */
  provisional?: boolean;
}

const UNCLASSIFIED: ContextSpec = { context: "unclassified" };

/**
 * A child's context from facts the server's SQL cannot shape: the backend type, role OID and
 * database OID the server keeps for the pid (names looked up by OID), cross-checked with the
 * kernel's view of its sockets. A client connection means a client backend or a walsender,
 * whatever else is claimed; a process claiming to be one without a connection is inconsistent.
 * Inconsistent facts pin the most restrictive context for good; missing facts give it for the
 * call at hand only. The title is used only for processes forked before the server was ready,
 * and only without a client connection (no client has reached them; they run no SQL); after
 * that a missing row is an alarm and the most restrictive context, never a title.
 */
export function classifyChild(f: ChildFacts): ChildClassification {
  const row = f.activity;
  if (row && row !== "none") {
    const claimsClient = CLIENT_TYPES.has(row.backendType);
    if (claimsClient !== f.clientConnection) {
      return {
        ctx: UNCLASSIFIED, pin: true,
        note: f.clientConnection ? `inconsistent: "${row.backendType}" with a client connection` : `inconsistent: "${row.backendType}" without a client connection`,
      };
    }
    if (!f.clientConnection) {
      const mismatch = typeMismatch(row.backendType, f.ownBackendType);
      if (mismatch) return mismatch;
    }
    if (row.backendType === "client backend" || row.backendType === "parallel worker") {
      if (row.role === undefined || row.database === undefined) return { ctx: UNCLASSIFIED, pin: false, note: "role or database not known yet" };
      const mismatch = row.backendType === "client backend" ? rowMismatch(row, f.startupNames) : undefined;
      if (mismatch) return mismatch;
      return { ctx: { context: row.backendType === "client backend" ? "session" : "parallel_worker", role: row.role, database: row.database }, pin: true };
    }
    if (row.backendType === "walsender") {
      // A walsender with a database (replication=database) runs SQL: it is a session of its role
      // and database. Which one it is shows only once its role is in the row (PostgreSQL 18 shows
      // a row while the connection authenticates, without role or database).
      if (row.role === undefined) return { ctx: UNCLASSIFIED, pin: false, note: "role not known yet" };
      const mismatch = rowMismatch(row, f.startupNames);
      if (mismatch) return mismatch;
      return { ctx: { context: "walsender", ...(row.database !== undefined ? { role: row.role, database: row.database } : {}) }, pin: true };
    }
    const kind = KINDS[row.backendType];
    if (kind) return { ctx: { context: kind }, pin: true };
    return { ctx: UNCLASSIFIED, pin: true, note: `unknown backend type "${row.backendType.slice(0, 64)}"` };
  }
  if (f.clientConnection) return { ctx: UNCLASSIFIED, pin: false, note: "client connection not authenticated yet" };
  // No row (none for the pid, or no answer from the monitor): the type the process keeps in its
  // own memory decides, whenever it can be read, and the title never does then. MyBackendType is
  // the postmaster's word here: the server's code sets it right after the fork, and new code
  // enters a process only through a routed call held for this classification (the exec gate),
  // so nothing else has written it yet; pinned now, for good. A title is the process's too, but a
  // background worker's is its registrant's bgw_name, and whether the server is "ready" (which
  // once decided whether titles count) is postmaster.pid's word, which a superuser's COPY can
  // rewrite (attacks/bgworker-forge.test.ts).
  if (f.ownBackendType === "background worker") {
    // Any background worker before its row, whatever its title: a dynamic one maps its library,
    // which its registrant chose, before it gets a row, and that library's code could then set
    // every fact classification reads later (its own type, its row, a Port). So the call that
    // brings that code pins the background worker's context (the session's lists), for good.
    // Other calls only run the server's code: the same context for that call alone, so that a
    // worker whose library is the server's (the logical replication launcher, an apply worker)
    // is told by its row once it has one.
    return f.entersCode ? { ctx: { context: "background_worker" }, pin: true } : { ctx: { context: "background_worker" }, pin: false, provisional: true };
  }
  const ownKind = f.ownBackendType !== undefined && OWN_TYPES.has(f.ownBackendType) ? KINDS[f.ownBackendType] : undefined;
  if (ownKind) return { ctx: { context: ownKind }, pin: true };
  // A client's type without a client connection (or another that is no kind): not a title either.
  if (f.ownBackendType !== undefined && f.ownBackendType !== "invalid" && f.ownBackendType !== "unreadable") {
    return { ctx: UNCLASSIFIED, pin: false, note: `its own type, ${JSON.stringify(f.ownBackendType)}, is no process kind without a client connection` };
  }
  if (f.forkedAfterReady) {
    return { ctx: UNCLASSIFIED, pin: false, note: f.activity === undefined ? "alarm: no answer from the monitor (titles are not a source once the server was ready)" : "alarm: the server has no row for it (titles are not a source once the server was ready)" };
  }
  const t = contextOfTitle(f.title);
  if (!t || t.context === "session" || t.context === "parallel_worker") {
    return { ctx: UNCLASSIFIED, pin: false, note: t ? "title claims a session without a client connection" : "title not set yet" };
  }
  return { ctx: { context: t.context }, pin: true };
}
