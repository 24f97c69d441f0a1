// A small record `run` keeps while a server runs, so that `status` and `log` can find the
// policy, the log and the postmaster without being told. It lives where the launcher's user
// can write and the server's user (when different) cannot: /run/pg_seccomp as root, else
// $XDG_RUNTIME_DIR/pg_seccomp or /tmp/pg_seccomp-<uid>.

import { createHash } from "node:crypto";
import { lstatSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from "node:fs";
import { join, resolve } from "node:path";

export interface RunState {
  launcherPid: number;
  postmasterPid: number;
  dataDir: string;
  policyPath: string;
  arch: string;
  /** JSON-lines violation log written by the supervisor. */
  logPath: string;
  startedAt: string;
}

export function runStateDir(): string {
  const uid = process.getuid?.() ?? 0;
  if (uid === 0) return ROOT_RUN_STATE_DIR;
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, "pg_seccomp");
  return `/tmp/pg_seccomp-${uid}`;
}

/** A short stable name for a data directory (the default log's and the last-run record's). */
export function dataDirKey(dataDir: string): string {
  return createHash("sha256").update(dataDir).digest("hex").slice(0, 12);
}

/**
 * What stays after a server stops, so that `log -D` finds the log post mortem: the data
 * directory, the log and when it started. One per data directory, replaced at every start,
 * never removed; mode 0644 like the run state (it holds paths, nothing secret).
 */
export interface LastRun {
  dataDir: string;
  logPath: string;
  policyPath: string;
  postmasterPid: number;
  startedAt: string;
}

export function lastRunPath(dataDir: string, dir = runStateDir()): string {
  return join(dir, `last-${dataDirKey(resolve(dataDir))}.json`);
}

/**
 * The last run's record for `dataDir` in `dir`, or undefined. The directory may belong to the
 * server's user (a launcher run as that user keeps its state in /tmp/pg_seccomp-UID): the record
 * is taken only when the directory and the file are owned by `trustedUids` and the file is a
 * regular file (not a link), at most 64 KiB; it names paths only, which the caller checks again.
 */
export function readLastRun(dataDir: string, dir = runStateDir(), trustedUids?: readonly number[]): LastRun | undefined {
  const path = lastRunPath(dataDir, dir);
  try {
    if (!ownedBy(dir, path, trustedUids)) return undefined;
    const v = JSON.parse(readFileSync(path, "utf8")) as LastRun;
    if (typeof v.logPath !== "string" || typeof v.dataDir !== "string" || resolve(v.dataDir) !== resolve(dataDir)) return undefined;
    return v;
  } catch {
    return undefined;
  }
}

export function writeRunState(state: RunState, dir = runStateDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  if (state.dataDir) {
    const last: LastRun = { dataDir: state.dataDir, logPath: state.logPath, policyPath: state.policyPath, postmasterPid: state.postmasterPid, startedAt: state.startedAt };
    const lp = lastRunPath(state.dataDir, dir);
    writeFileSync(`${lp}.tmp`, JSON.stringify(last, null, 2) + "\n", { mode: 0o644 });
    renameSync(`${lp}.tmp`, lp);
  }
  const path = join(dir, `${state.postmasterPid}.json`);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(state, null, 2) + "\n", { mode: 0o644 });
  renameSync(tmp, path);
  return path;
}

export function removeRunState(postmasterPid: number, dir = runStateDir()): void {
  rmSync(join(dir, `${postmasterPid}.json`), { force: true });
  rmSync(join(dir, `${postmasterPid}.contexts.json`), { force: true });
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Where a run state may be: a directory, and (when it is not ours) the uids it must belong to. */
export interface RunStatePlace {
  dir: string;
  trustedUids?: number[];
}

/**
 * The run-state directories to look in for a server whose data directory (or postmaster)
 * belongs to `ownerUid`: ours; root's (/run/pg_seccomp: a launcher run as root); and that user's
 * own (a launcher run as the server's user, as pg_ctl and pg_ctlcluster start it).
 */
export function runStatePlaces(ownerUid?: number): RunStatePlace[] {
  const me = process.getuid?.() ?? 0;
  const mine = runStateDir();
  const places: RunStatePlace[] = [{ dir: mine }];
  if (mine !== ROOT_RUN_STATE_DIR) places.push({ dir: ROOT_RUN_STATE_DIR, trustedUids: [0] });
  if (ownerUid !== undefined && ownerUid !== me && ownerUid !== 0) {
    for (const dir of [`/tmp/pg_seccomp-${ownerUid}`, `/run/user/${ownerUid}/pg_seccomp`]) places.push({ dir, trustedUids: [ownerUid] });
  }
  return places;
}

export const ROOT_RUN_STATE_DIR = "/run/pg_seccomp";

/** The directory and the file are a real directory and a regular file of one of `uids`, small. */
function ownedBy(dir: string, file: string, uids: readonly number[] | undefined): boolean {
  if (!uids) return true;
  try {
    const d = lstatSync(dir);
    const f = lstatSync(file);
    return d.isDirectory() && uids.includes(d.uid) && f.isFile() && uids.includes(f.uid) && f.size <= 65536;
  } catch {
    return false;
  }
}

/**
 * The state of a running server, by postmaster pid or data directory. With `trustedUids` (a
 * directory that is not ours) the directory and file must belong to them; the paths a record
 * names are then checked again where they are used (the log's owner, the policy's).
 */
export function findRunState(by: { pid?: number; dataDir?: string }, dir = runStateDir(), trustedUids?: readonly number[]): RunState | undefined {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => /^\d+\.json$/.test(n)); // not last-*.json, nor *.contexts.json
  } catch {
    return undefined;
  }
  for (const n of names) {
    let s: RunState;
    try {
      if (!ownedBy(dir, join(dir, n), trustedUids)) continue;
      s = JSON.parse(readFileSync(join(dir, n), "utf8")) as RunState;
      if (typeof s.postmasterPid !== "number" || typeof s.dataDir !== "string" || typeof s.logPath !== "string") continue;
    } catch {
      continue;
    }
    if (!pidAlive(s.postmasterPid)) continue;
    if (by.pid !== undefined && s.postmasterPid === by.pid) return s;
    if (by.dataDir !== undefined && resolve(s.dataDir) === resolve(by.dataDir)) return s;
  }
  return undefined;
}

/** Where the launcher records the contexts it pinned (for `status`): beside the run state. */
export function contextsPath(postmasterPid: number, dir = runStateDir()): string {
  return join(dir, `${postmasterPid}.contexts.json`);
}

export interface PinnedContext {
  pid: number;
  start: string;
  ctx: { context: string; role?: string; database?: string };
}

export function writeContexts(postmasterPid: number, pins: readonly PinnedContext[], dir = runStateDir()): void {
  const path = contextsPath(postmasterPid, dir);
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, JSON.stringify(pins) + "\n", { mode: 0o644 });
  renameSync(tmp, path);
}

/** The launcher's pins, or undefined (no record, or not readable). Bounded: the file is ours, not the server's. */
export function readContexts(postmasterPid: number, dir = runStateDir()): PinnedContext[] | undefined {
  try {
    const v = JSON.parse(readFileSync(contextsPath(postmasterPid, dir), "utf8")) as unknown;
    return Array.isArray(v) ? (v as PinnedContext[]).filter((p) => p && typeof p.pid === "number" && typeof p.start === "string" && p.ctx && typeof p.ctx.context === "string") : undefined;
  } catch {
    return undefined;
  }
}

/** A regular file root owns that anyone may read: what a record from the server's user may name as a policy. */
export function readableRootFile(path: string): boolean {
  try {
    const st = lstatSync(path);
    return st.isFile() && st.uid === 0 && (st.mode & 0o004) !== 0;
  } catch {
    return false;
  }
}

export interface ServerRecord {
  policyPath: string;
  logPath: string;
  running: boolean;
  /** The record is in the server's user's directory, not ours or root's. */
  foreign: boolean;
  /** The run-state directory the record is in: the launcher's table and client records are there too. */
  stateDir: string;
}

/**
 * What pg_seccomp run recorded for a data directory: the running server's state, else the last
 * run's. A record from the server's user's directory counts only with a policy root owns.
 */
export function findServerRecord(dataDir: string, ownerUid?: number): ServerRecord | undefined {
  const places = runStatePlaces(ownerUid);
  const foreign = (p: RunStatePlace) => p.trustedUids !== undefined && !p.trustedUids.includes(0);
  for (const p of places) {
    const rs = findRunState({ dataDir }, p.dir, p.trustedUids);
    if (rs && (!foreign(p) || readableRootFile(rs.policyPath))) return { policyPath: rs.policyPath, logPath: rs.logPath, running: true, foreign: foreign(p), stateDir: p.dir };
  }
  for (const p of places) {
    const last = readLastRun(dataDir, p.dir, p.trustedUids);
    if (last && (!foreign(p) || readableRootFile(last.policyPath))) return { policyPath: last.policyPath, logPath: last.logPath, running: false, foreign: foreign(p), stateDir: p.dir };
  }
  return undefined;
}

/**
 * Where the launcher leaves, per backend, what SQL may read (root-owned files in the run-state
 * directory, readable by the server, writable only by the launcher, so the server cannot forge
 * them): `<prefix><pid>-<start>.json` the rows of the filter a backend installed (for
 * pg_get_seccomp_filter()), `<prefix><pid>-<start>.result.json` the answer to its last
 * set_client_filter() call. `start` is the backend's start time in /proc/<pid>/stat (field 22),
 * so a later process with the same pid never reads another's record.
 */
export function clientRecordPrefix(dataDir: string, stateDir = runStateDir()): string {
  return join(stateDir, `client-${createHash("sha256").update(resolve(dataDir)).digest("hex").slice(0, 12)}-`);
}

/**
 * The launcher's table of the policy it installed, for seccomp_filter() and
 * pg_get_seccomp_filter(): `<prefix>table.json` beside the per-backend records (root-owned,
 * readable by the server, not writable by it). Written when supervision starts, removed when it
 * ends; it names the postmaster it belongs to, so SQL run on a server started otherwise (or
 * later) never takes a stale table for the truth. The SQL picks, at call time, the variant of
 * the caller's login role and database.
 */
export function launcherTablePath(dataDir: string, stateDir = runStateDir()): string {
  return `${clientRecordPrefix(dataDir, stateDir)}table.json`;
}

export interface LauncherTable {
  postmasterPid: number;
  enabled: boolean;
  policyPath: string;
  arch: string;
  /** Rows (global and session) as `show --role R --database D` prints them; null: any role, any database. */
  variants: Array<{ role: string | null; database: string | null; rows: Array<{ syscall: string; syscallnum: number; filter_action: string; context: string }> }>;
}
