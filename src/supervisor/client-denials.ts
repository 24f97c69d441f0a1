// The kernel's seccomp audit records, for the violation log: calls a filter decided in the
// kernel, which the supervisor never sees. Two kinds reach us (host/kmsg.ts reads them, from the
// audit netlink read group or /dev/kmsg):
//   - kills (SECCOMP_RET_KILL_*: the kernel records them for every filter, ours included);
//   - denials of a set_client_filter() filter, which the launcher installs with
//     SECCOMP_FILTER_FLAG_LOG (the kernel allows one user-notification listener per filter
//     stack, so those calls are decided in the kernel).
// Anyone can make such records: the server's OS user can install a logging filter on a process
// of its own. So a record is attributed only to a process the supervisor knew alive (a pid and
// start time it classified, or a narrowed session), or to a program such a process runs (found
// through the kernel's parent links, each checked by start time); anything else is dropped and
// counted. A record names a pid, not a start time: one of a process gone by the time it is read
// is its own only while its pid has not been handed out again (the caller forgets known pids
// the kernel's fork events show forked anew, and says whether it could). The record has no
// arguments and no errno.

import { seccompActionOf } from "../seccomp/index.js";
import type { ContextSpec } from "../policy/decision.js";
import type { KmsgSeccomp } from "../host/kmsg.js";
import type { ViolationEvent } from "../host/violation-event.js";

/** A process the supervisor knew alive: its start time (/proc/PID/stat field 22) and context. */
export interface KnownProcess {
  start: string;
  ctx: ContextSpec;
  /** Narrowed by set_client_filter(). */
  narrowed?: boolean;
  /** A program (an exec the supervisor let through) run by this server process. */
  programOf?: number;
  /** When the launcher found it gone (its last records may still be unread). */
  goneAt?: number;
  /** What the filter is, for the log (default: a session's set_client_filter() filter). */
  note?: string;
  /** Its parent when it became known (a fork of its pid by another parent is not its own). */
  ppid?: number;
}

/** Kept for the set_client_filter() path's callers. */
export type NarrowedSession = KnownProcess;

export interface ClientDenialIO {
  now(): number;
  stat(pid: number): { ppid: number; start: string } | undefined;
  title(pid: number): string;
}

const MAX_ANCESTRY = 32;

/**
 * The action a record's `code=` stands for, or undefined for one the log does not take. The
 * kernel writes the action only (SECCOMP_RET_ACTION_FULL), not the errno: the event has none.
 */
export function auditAction(code: number): Pick<ViolationEvent, "action"> | undefined {
  switch (seccompActionOf(code)?.name) {
    case "ERRNO": return { action: "error" };
    case "KILL_PROCESS": case "KILL_THREAD": return { action: "kill" };
    case "TRAP": return { action: "trap" };
    case "LOG": return { action: "log" };
    default: return undefined;
  }
}

/**
 * The log event for an audit record of a known process or of a program it runs, else "unknown"
 * (the caller drops and counts it), or undefined for a record the log does not take (an allow).
 * A known process gone since (a killed backend) is still itself by its pid until the launcher
 * forgets it; a live process is someone else when its start time differs.
 */
export function kernelRecordEvent(
  rec: KmsgSeccomp, known: ReadonlyMap<number, KnownProcess>, io: ClientDenialIO,
  /**
   * The caller has forgotten every known pid handed out again since it was known (the kernel's
   * fork events, read after the records): a record of a known process gone by now is its own.
   * False: such a record is "unknown".
   */
  goneAttributable = true,
): ViolationEvent | "unknown" | undefined {
  const act = auditAction(rec.code);
  if (!act) return undefined;
  let cur = rec.pid;
  for (let depth = 0; depth < MAX_ANCESTRY; depth++) {
    const st = io.stat(cur);
    const k = known.get(cur);
    if (k && (st ? k.start === st.start : depth === 0 && goneAttributable)) {
      // Errno, trap and log records come only from a filter with the log flag: the client filter.
      const client = k.narrowed && act.action !== "kill";
      const program = cur !== rec.pid || k.programOf !== undefined ? rec.exe ?? rec.comm : undefined;
      const decidedBy = cur !== rec.pid ? cur : k.programOf;
      return {
        time: new Date(io.now()).toISOString(),
        pid: rec.pid,
        process: (st ? io.title(rec.pid) : "") || (rec.comm ?? ""),
        context: k.ctx.context,
        ...(decidedBy !== undefined ? { decidedBy } : {}),
        ...(k.ctx.role !== undefined ? { role: k.ctx.role } : {}),
        ...(k.ctx.database !== undefined ? { database: k.ctx.database } : {}),
        ...(program !== undefined ? { program } : {}),
        syscall: rec.syscall, nr: rec.nr, args: [], ...act,
        ...(act.action === "kill" ? { signal: "SIGSYS" } : {}),
        note: client || (k.note !== undefined && act.action !== "kill")
          ? k.note ?? "a session's set_client_filter() filter (the kernel's audit record: no arguments)"
          : `${act.action === "kill" ? "killed in the kernel by the policy" : "the kernel's audit record"} (no arguments)${k.ctx.context === "unclassified" ? "; a child of the postmaster the supervisor had not classified yet" : ""}`,
      };
    }
    if (!st || st.ppid <= 1) return "unknown";
    cur = st.ppid;
  }
  return "unknown";
}
