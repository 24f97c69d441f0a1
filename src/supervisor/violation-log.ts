// The violation log: one JSON line per call the policy did not simply allow, written by the
// launcher (outside the server) where the DBA can read it, with the process, its context, role
// and database, and for sessions the statement that was running. Its size is bounded: past
// `maxBytes` the file is rotated to `<file>.1` (one generation kept).

import { closeSync, fchownSync, fstatSync, readFileSync, realpathSync, writeSync, type Stats } from "node:fs";
import { dataDirKey, ensureRunStateDir, stateDirProblem } from "../host/run-state.js";
import { basename, dirname, join, resolve } from "node:path";
import { directoryProblem, type ServerIdentity } from "../host/permissions.js";
import { openAppendAt, openDirectoryNoFollow, renameWithin, UnsafePathError } from "../host/safe-fs.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { hostname } from "node:os";
import { close as closeFd } from "../kernel/libc.js";
import { sendDatagram, unixDatagramSocket } from "../kernel/dgram.js";
import { JOURNAL_SOCKET, journalDatagram, SYSLOG_SOCKET, syslogDatagram, type LogTarget } from "./log-sinks.js";

export const DEFAULT_LOG_MAX_BYTES = 16 * 1024 * 1024;

/**
 * A log path that stays the same across restarts of one data directory: in the writer's own
 * run-state directory (run-state.ts: created and checked, never one another user made).
 */
export function defaultLogPath(dataDir: string): string {
  return join(ensureRunStateDir(), `violations-${dataDirKey(dataDir)}.jsonl`);
}

/**
 * The log file, written by the launcher (root when it starts the server as another user). It is
 * only ever reached through a descriptor of its directory, opened from "/" without following a
 * link, that the server's user cannot write (permissions.ts; checked again on every open and
 * before every rotation). The file is opened O_APPEND|O_CREAT|O_NOFOLLOW, must be a regular file
 * of ours with one name, and is handed to the reader group with fchown on its descriptor; a
 * rotation renames within the directory descriptor and creates the new file with O_EXCL.
 */
export class ViolationLog {
  private size = 0;
  private pending: string[] = [];
  private pendingBytes = 0;
  private timer: NodeJS.Timeout | undefined;
  private dirFd: number | undefined;
  private fd: number | undefined;
  private readonly name: string;
  private readonly me = process.getuid?.() ?? 0;
  /** Why the log could not be written last time (undefined while it can). */
  lastError: string | undefined;

  constructor(
    readonly path: string,
    private readonly maxBytes = DEFAULT_LOG_MAX_BYTES,
    /** Group that may read the log (the server's, for the SQL view), when we are root. */
    private readonly readerGid?: number,
    /** Lines are written in batches at most this often (a learning run logs many calls). */
    private readonly flushMs = 50,
    /** The server's user when it is not us: it must not be able to write the log's directory. */
    private readonly server?: ServerIdentity,
    /** Where records go: the file, the journal, syslog (run --log-to). */
    readonly targets: readonly LogTarget[] = ["file"],
    /** The log is in our run-state directory, which must pass its checks (run-state.ts). */
    private readonly privateDir = false,
  ) {
    this.name = basename(resolve(path));
  }

  private socketFd: number | undefined;
  /** Records journald or syslog did not take (socket missing, full, or refused). */
  dropped = 0;

  /** Hands one record to the journal and/or syslog: one non-blocking datagram each, dropped if not taken. */
  private send(e: ViolationEvent): void {
    for (const t of this.targets) {
      if (t === "file") continue;
      try {
        this.socketFd ??= unixDatagramSocket();
        if (t === "journald") sendDatagram(this.socketFd, JOURNAL_SOCKET, journalDatagram(e));
        else sendDatagram(this.socketFd, SYSLOG_SOCKET, syslogDatagram(e, hostname()));
      } catch (err) {
        this.dropped++;
        this.lastError = `${t}: ${(err as Error).message}`;
      }
    }
  }

  record(e: ViolationEvent): void {
    if (this.targets.length !== 1 || this.targets[0] !== "file") this.send(e);
    if (!this.targets.includes("file")) return;
    const line = JSON.stringify(e) + "\n";
    this.pending.push(line);
    this.pendingBytes += Buffer.byteLength(line);
    if (this.pendingBytes >= 64 * 1024) this.flush();
    else this.timer ??= setTimeout(() => this.flush(), this.flushMs);
  }

  /** The log's directory is fine when the server's user can neither write it nor replace it. */
  private readonly checkDir = (_path: string, st: Stats, isLast: boolean): string | undefined => {
    // Run as the server's user (the pg_ctl wrapper), the default log is in that user's own run-state
    // directory: it must still be that (its own, 0700), not a directory another user made first.
    if (!this.server) return isLast && this.privateDir ? stateDirProblem(st, this.me) : undefined;
    if (isLast && st.uid !== this.me && st.uid !== 0) return `is owned by uid ${st.uid}, not by root`;
    return directoryProblem(st, this.server, isLast);
  };

  private open(exclusive: boolean): void {
    if (this.dirFd === undefined) this.dirFd = openDirectoryNoFollow(realpathSync(dirname(resolve(this.path))), this.checkDir);
    const fd = openAppendAt(this.dirFd, this.name, 0o640, { owner: this.me, singleLink: true, exclusive });
    try {
      if (this.readerGid !== undefined) fchownSync(fd, this.me, this.readerGid);
      this.size = fstatSync(fd).size;
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    this.fd = fd;
  }

  /** Renames the log to <name>.1 inside the verified directory and starts a new file. */
  private rotate(): void {
    const dirFd = this.dirFd!;
    const why = this.checkDir(dirname(resolve(this.path)), fstatSync(dirFd), true);
    if (why) throw new UnsafePathError(dirname(resolve(this.path)), why);
    closeSync(this.fd!);
    this.fd = undefined;
    renameWithin(dirFd, this.name, `${this.name}.1`);
    this.open(true);
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
      if (this.fd === undefined) this.open(false);
      if (this.size + bytes > this.maxBytes && this.size > 0) this.rotate();
      writeSync(this.fd!, text);
      this.size += bytes;
      this.lastError = undefined;
    } catch (e) {
      // Best effort: the decision was already made and enforced. Start over next time.
      this.lastError = (e as Error).message;
      this.closeFds();
    }
  }

  /** Flushes and closes the file. */
  close(): void {
    this.flush();
    this.closeFds();
  }

  private closeFds(): void {
    if (this.socketFd !== undefined) {
      try {
        closeFd(this.socketFd);
      } catch {
        /* already gone */
      }
      this.socketFd = undefined;
    }
    if (this.fd !== undefined) closeSync(this.fd);
    if (this.dirFd !== undefined) closeSync(this.dirFd);
    this.fd = this.dirFd = undefined;
  }
}

// Reading the log back (hostile input: anyone who can write the file): src/inspect/violations.ts.
