// Which context a server process belongs to, from its process title. PostgreSQL sets the title
// of every child right after fork ("postgres: checkpointer", "postgres: alice sales [local]
// idle"); until then a child shows the postmaster's command line and is unclassified. Once a
// process is classified its context is pinned for its life (pid + start time), so that a
// process cannot talk itself into another context later by changing its title. Only the
// postmaster's own children are classified by title; anything they start (a fork that execs
// COPY's program, a shell) gets its parent's context, whatever its title says.

import type { ContextSpec } from "../policy/decision.js";
import type { ProcessKind } from "../policy/policy.js";

export interface ParsedTitle {
  context: ContextSpec["context"];
  role?: string;
  database?: string;
  /** For a parallel worker: its leader's pid. */
  leaderPid?: number;
}

/** Auxiliary processes and launchers, as their titles begin (after "postgres: [cluster: ]"). */
const FIXED: ReadonlyArray<readonly [string, ProcessKind]> = [
  ["checkpointer", "checkpointer"],
  ["background writer", "background_writer"],
  ["walwriter", "walwriter"],
  ["autovacuum launcher", "autovacuum_launcher"],
  ["autovacuum worker", "autovacuum_worker"],
  ["logical replication launcher", "logical_replication_launcher"],
  ["logical replication worker", "logical_replication_worker"],
  ["logical replication apply worker", "logical_replication_worker"],
  ["logical replication tablesync worker", "logical_replication_worker"],
  ["archiver", "archiver"],
  ["startup", "startup"],
  ["walreceiver", "walreceiver"],
  ["walsender", "walsender"],
  ["logger", "logger"],
];

/** A client backend's fixed part: user, database, then "[local]", host(port) or host. */
const CLIENT = /^(\S+) (\S+) (\[local\]|\S+\(\d+\)|\S+)(?: |$)/;

/**
 * Parses a process title (/proc/PID/cmdline with NULs as spaces). Returns undefined for a
 * title that is not a PostgreSQL child's (the postmaster's own command line, or an exec'd
 * program).
 */
export function parseProcessTitle(title: string, clusterName?: string): ParsedTitle | undefined {
  const m = /^postgres: (.*)$/.exec(title.trimEnd());
  if (!m) return undefined;
  let rest = m[1]!;
  if (clusterName && rest.startsWith(`${clusterName}: `)) return parseFixedPart(rest.slice(clusterName.length + 2));
  // With cluster_name set the title reads "postgres: NAME: fixed part"; a role name ending in a
  // colon is far less likely than a cluster name.
  const cn = /^([^ :]+): (.+)$/.exec(rest);
  if (cn) rest = cn[2]!;
  return parseFixedPart(rest);
}

function parseFixedPart(rest: string): ParsedTitle | undefined {
  const pw = /^parallel worker for PID (\d+)/.exec(rest);
  if (pw) return { context: "parallel_worker", leaderPid: Number(pw[1]) };
  for (const [prefix, kind] of FIXED) {
    if (rest === prefix || rest.startsWith(prefix + " ")) return { context: kind };
  }
  const c = CLIENT.exec(rest);
  if (c) return { context: "session", role: c[1]!, database: c[2]! };
  // Any other title is a background worker's (its bgw_type), e.g. "pg_cron launcher".
  return rest.trim().length > 0 ? { context: "background_worker" } : undefined;
}

/** Fields of /proc/PID/stat we need: parent pid and start time (unique with the pid). */
export function parseStat(stat: string): { ppid: number; start: string } | undefined {
  const close = stat.lastIndexOf(")");
  if (close < 0) return undefined;
  const f = stat.slice(close + 2).split(" ");
  // After "pid (comm) ": state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
  // utime stime cutime cstime priority nice threads itrealvalue starttime
  const ppid = Number(f[1]);
  const start = f[19];
  return Number.isFinite(ppid) && start !== undefined ? { ppid, start } : undefined;
}

export interface ProcReader {
  cmdline(pid: number): string | undefined;
  stat(pid: number): string | undefined;
}

/** Classifies pids for the supervisor; keeps pins. */
export class Classifier {
  private pins = new Map<number, { start: string; ctx: ContextSpec; source: number }>();

  constructor(
    private readonly postmasterPid: number,
    private readonly proc: ProcReader,
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
    const st = parseStat(this.proc.stat(pid) ?? "");
    if (!st) return { ctx: { context: "unclassified" }, source: pid };
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
    } else {
      const title = (this.proc.cmdline(pid) ?? "").replace(/\0+$/, "").replace(/\0/g, " ");
      const parsed = parseProcessTitle(title);
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
