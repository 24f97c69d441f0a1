// The violation log: one JSON line per call the policy did not simply allow, written by the
// launcher (outside the server) where the DBA can read it, with the process, its context, role
// and database, and for sessions the statement that was running. Its size is bounded: past
// `maxBytes` the file is rotated to `<file>.1` (one generation kept).

import { appendFileSync, chownSync, renameSync, statSync, readFileSync } from "node:fs";
import { createHash } from "node:crypto";
import { runStateDir } from "./state.js";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import type { ViolationEvent } from "./supervisor.js";

export const DEFAULT_LOG_MAX_BYTES = 16 * 1024 * 1024;

/** A log path that stays the same across restarts of one data directory. */
export function defaultLogPath(dataDir: string): string {
  return join(runStateDir(), `violations-${createHash("sha256").update(dataDir).digest("hex").slice(0, 12)}.jsonl`);
}

export class ViolationLog {
  private size: number;
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly path: string,
    private readonly maxBytes = DEFAULT_LOG_MAX_BYTES,
    /** Group that may read the log (the server's, for the SQL view), when we are root. */
    private readonly readerGid?: number,
    /** Lines are written in batches at most this often (a learning run logs many calls). */
    private readonly flushMs = 50,
  ) {
    try {
      this.size = statSync(path).size;
    } catch {
      this.size = 0;
    }
  }

  record(e: ViolationEvent): void {
    const line = JSON.stringify(e) + "\n";
    this.pending.push(line);
    this.pendingBytes += Buffer.byteLength(line);
    if (this.pendingBytes >= 64 * 1024) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** Writes what is buffered; rotates first when the file would grow past maxBytes. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const text = this.pending.join("");
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    try {
      if (this.size + bytes > this.maxBytes && this.size > 0) {
        renameSync(this.path, `${this.path}.1`);
        this.size = 0;
      }
      const fresh = this.size === 0;
      appendFileSync(this.path, text, { mode: 0o640 });
      if (fresh && this.readerGid !== undefined) chownSync(this.path, 0, this.readerGid);
      this.size += bytes;
    } catch {
      /* best effort: the decision was already made and enforced */
    }
  }
}

/** Reads the postmaster.pid file's port and socket directory. */
export function serverAddress(dataDir: string): { port: string; socketDir: string } | undefined {
  try {
    const lines = readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n");
    const port = lines[3]?.trim();
    const socketDir = lines[4]?.trim();
    return port && socketDir ? { port, socketDir } : undefined;
  } catch {
    return undefined;
  }
}

export interface StatementLookup {
  psqlPath: string;
  dataDir: string;
  user?: { uid: number; gid: number };
}

/**
 * A backend's running statement from pg_stat_activity, with psql as the server's OS user over
 * the Unix socket (peer or trust authentication). The supervisor calls it while the denied call
 * is still pending, so the statement is the one that made it; it gives up after a second.
 */
export function runningStatement(l: StatementLookup, pid: number): string | undefined {
  const addr = serverAddress(l.dataDir);
  if (!addr) return undefined;
  const r = spawnSync(
    l.psqlPath,
    ["-X", "-A", "-t", "-h", addr.socketDir, "-p", addr.port, "-d", "postgres", "-c", `select query from pg_stat_activity where pid = ${Number(pid)}`],
    { timeout: 1000, encoding: "utf8", env: { ...process.env, PGCONNECT_TIMEOUT: "1", PGUSER: process.env.PGUSER ?? "postgres" }, ...(l.user ? { uid: l.user.uid, gid: l.user.gid } : {}) },
  );
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

// Reading the log back (hostile input: anyone who can write the file): src/inspect/violations.ts.
