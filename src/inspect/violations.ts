// `pg_seccomp log`: the violation log of a running server (found through its run state) or of a
// given file, as a table a DBA reads, or JSON lines for scripts; -f follows it.

import { openSync, readSync, closeSync, statSync } from "node:fs";
import { findRunState } from "../launcher/state.js";
import { readViolations } from "../launcher/violation-log.js";
import type { ViolationEvent } from "../launcher/supervisor.js";
import { psqlTable } from "./format.js";
import { errnoName } from "../syscalls/errno.js";

export class LogNotFoundError extends Error {
  override name = "UsageError";
}

export function violationLogPath(by: { dataDir?: string; pid?: number; file?: string }): string {
  if (by.file) return by.file;
  const state = findRunState(by);
  if (!state) {
    throw new LogNotFoundError(
      `no server started by pg_seccomp run is running${by.dataDir ? ` for ${by.dataDir}` : by.pid ? ` with postmaster pid ${by.pid}` : ""}` +
        `\nhint: give the log file with --file (run --log FILE, or /run/pg_seccomp/<postmaster pid>.jsonl)`,
    );
  }
  return state.logPath;
}

export const VIOLATION_COLUMNS = ["time", "pid", "context", "role", "database", "syscall", "action", "statement"] as const;

export function violationRows(events: readonly ViolationEvent[]) {
  return events.map((e) => ({
    time: e.time.replace("T", " ").replace(/\.\d+Z$/, "Z"),
    pid: e.pid,
    context: e.context,
    role: e.role ?? "",
    database: e.database ?? "",
    syscall: e.syscall,
    action: e.action === "error" && e.errno ? `error:${errnoName(e.errno)}` : e.signal ? `${e.action} (${e.signal})` : e.action,
    statement: (e.query ?? e.process).replace(/\s+/g, " ").slice(0, 80),
  }));
}

export function formatViolations(events: readonly ViolationEvent[]): string {
  return psqlTable(VIOLATION_COLUMNS, violationRows(events));
}

/** Calls `onLines` with each complete new line appended to the file; returns a stop function. */
export function followFile(path: string, from: number, onLines: (lines: string[]) => void, intervalMs = 500): () => void {
  let offset = from;
  let rest = "";
  const timer = setInterval(() => {
    let size: number;
    try {
      size = statSync(path).size;
    } catch {
      return;
    }
    if (size < offset) offset = 0; // rotated
    if (size === offset) return;
    const fd = openSync(path, "r");
    try {
      const buf = Buffer.alloc(size - offset);
      readSync(fd, buf, 0, buf.length, offset);
      offset = size;
      const text = rest + buf.toString("utf8");
      const lines = text.split("\n");
      rest = lines.pop() ?? "";
      if (lines.length) onLines(lines.filter((l) => l.trim()));
    } finally {
      closeSync(fd);
    }
  }, intervalMs);
  return () => clearInterval(timer);
}

export { readViolations };
