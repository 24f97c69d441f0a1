// What a set_client_filter() filter denies, for the violation log. The supervisor never sees
// those calls: the kernel allows one user-notification listener per filter stack, and the
// client filter decides its calls in the kernel. So the launcher installs it with
// SECCOMP_FILTER_FLAG_LOG, the kernel writes an audit record (type=1326) of each of its
// non-allow actions to /dev/kmsg (when no audit daemon takes them), and the launcher turns the
// records of narrowed sessions, and of programs they started, into log events here. The record
// has no arguments and no errno; its process is identified by pid and checked by start time.

import { seccompActionOf } from "../seccomp/index.js";
import type { ContextSpec } from "../policy/decision.js";
import type { KmsgSeccomp } from "../host/kmsg.js";
import type { ViolationEvent } from "../host/violation-event.js";

export interface NarrowedSession {
  /** Start time (/proc/PID/stat field 22) of the backend narrowed. */
  start: string;
  ctx: ContextSpec;
  /** When the launcher found it gone (its last records may still be unread). */
  goneAt?: number;
  /** What the filter is, for the log (default: a session's set_client_filter() filter). */
  note?: string;
}

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
 * The log event for an audit record, when it is about a narrowed session or a program it started
 * (found through the kernel's parent links, each checked by start time). A process gone before it
 * could be looked at (popen's child, whose exec the filter denied, exits at once) is taken for an
 * errno record, when it ran as the server's user while some session was narrowed: only a filter
 * installed with the log flag writes errno records, and the launcher installs no other.
 */
export function clientDenialEvent(
  rec: KmsgSeccomp, narrowed: ReadonlyMap<number, NarrowedSession>, serverUid: number, io: ClientDenialIO,
): ViolationEvent | undefined {
  const act = auditAction(rec.code);
  if (!act || narrowed.size === 0) return undefined;
  const base = {
    time: new Date(io.now()).toISOString(), pid: rec.pid, syscall: rec.syscall, nr: rec.nr, args: [] as string[], ...act,
  };
  let cur = rec.pid;
  for (let depth = 0; depth < MAX_ANCESTRY; depth++) {
    const st = io.stat(cur);
    const n = narrowed.get(cur);
    // A narrowed session that has exited since its call (a short psql -c): its own pid.
    if (n && (st ? n.start === st.start : depth === 0)) {
      return {
        ...base,
        process: io.title(rec.pid),
        context: n.ctx.context,
        ...(cur !== rec.pid ? { decidedBy: cur } : {}),
        ...(n.ctx.role !== undefined ? { role: n.ctx.role } : {}),
        ...(n.ctx.database !== undefined ? { database: n.ctx.database } : {}),
        note: n.note ?? "a session's set_client_filter() filter (the kernel's audit record: no arguments)",
      };
    }
    if (!st) break;
    if (st.ppid <= 1) return undefined;
    cur = st.ppid;
  }
  // Alive and not under a narrowed session: not ours. Gone: an errno record, which only a filter
  // installed with the log flag writes (kills are recorded for every filter, the main one too).
  if (cur !== rec.pid || rec.uid !== serverUid || act.action !== "error") return undefined;
  return {
    ...base,
    process: "",
    context: "session",
    note: "a set_client_filter() filter, in a process of the server's user gone before its session could be read (the kernel's audit record: no arguments)",
  };
}
