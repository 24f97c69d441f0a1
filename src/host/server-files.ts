// Files the server's OS user writes that root reads: one safe reader, and postmaster.pid's one parser.
//
// The server's user can replace any file in PGDATA with a link (to /dev/zero, to a root file),
// a FIFO or a device. readServerFile does not follow a link in the last component, opens without
// blocking, reads regular files only and at most a bound; what it returns is then parsed as
// hostile text: fields are checked for their form, and only ever go to psql run as the server's
// user, or to a message.

import { closeSync, fstatSync, openSync, readSync, constants as fsc } from "node:fs";
import { join } from "node:path";

/** At most this much of a configuration file is read. */
export const MAX_SERVER_FILE_BYTES = 4 * 1024 * 1024;

/**
 * A file the server's user writes (postmaster.pid, PG_VERSION, postgresql.conf), read the way root
 * may read it: the last component not followed if it is a link, opened without blocking (a FIFO
 * cannot hold us), a regular file only (no device), at most `max` bytes. Undefined otherwise.
 */
export function readServerFile(path: string, max = MAX_SERVER_FILE_BYTES): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, fsc.O_RDONLY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    if (!fstatSync(fd).isFile()) return undefined;
    const buf = Buffer.alloc(Math.min(max, 1 << 20));
    const parts: Buffer[] = [];
    let total = 0;
    for (let n; total < max && (n = readSync(fd, buf, 0, Math.min(buf.length, max - total), null)) > 0; total += n) parts.push(Buffer.from(buf.subarray(0, n)));
    return Buffer.concat(parts).toString("utf8");
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// postmaster.pid

/** postmaster.pid is a few short lines; more is not read. */
export const POSTMASTER_PID_MAX_BYTES = 4096;

/** The lines of postmaster.pid (PostgreSQL's miscadmin.h LOCK_FILE_LINE_*), each present only when well-formed. */
export interface PostmasterPidFile {
  /** Line 1: the postmaster's pid. */
  pid?: number;
  /** Line 4: the port, as written (digits only). */
  port?: string;
  /** Line 5: the first Unix socket directory ("" when the server has none). */
  socketDir?: string;
  /** Line 6: the first listen address ("" or "*" when none or all). */
  listenAddress?: string;
  /** Line 8: the postmaster's status ("starting", "ready", "standby", "stopping"; "" until written). */
  status: string;
}

/** The first line of postmaster.pid: the postmaster's pid. */
export function parsePostmasterPid(text: string): number | undefined {
  const first = text.split("\n")[0]?.trim() ?? "";
  return /^\d+$/.test(first) && Number(first) > 0 ? Number(first) : undefined;
}

/** Parses postmaster.pid's text; a field that is missing or malformed is absent. */
export function parsePostmasterPidFile(text: string): PostmasterPidFile {
  const lines = text.split("\n");
  const out: PostmasterPidFile = { status: lines[7]?.trim() ?? "" };
  const pid = parsePostmasterPid(text);
  if (pid !== undefined) out.pid = pid;
  const port = lines[3]?.trim();
  if (port && /^\d+$/.test(port)) out.port = port;
  const socketDir = lines[4]?.trim();
  if (socketDir !== undefined) out.socketDir = socketDir;
  const listen = lines[5]?.trim();
  if (listen !== undefined) out.listenAddress = listen;
  return out;
}

/** DATADIR/postmaster.pid, read safely (readServerFile) and parsed; undefined when it cannot be read. */
export function readPostmasterPidFile(dataDir: string): PostmasterPidFile | undefined {
  const text = readServerFile(join(dataDir, "postmaster.pid"), POSTMASTER_PID_MAX_BYTES);
  return text === undefined ? undefined : parsePostmasterPidFile(text);
}
