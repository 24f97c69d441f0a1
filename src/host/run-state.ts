// A small record `run` keeps while a server runs, so that `status` and `log` can find the
// policy, the log and the postmaster without being told, and the other files of a run (the last
// run's record, the launcher's table for SQL, per-backend client-filter records, pinned contexts,
// the default violation log). They live in a directory only their writer can write:
//
//   root                /run/pg_seccomp, root's, mode 0755 (the server reads the launcher's table
//                       and client records there; nobody else can create a name in it);
//   the server's user   (a launcher started by pg_ctl through the wrapper) $XDG_RUNTIME_DIR/pg_seccomp
//                       when $XDG_RUNTIME_DIR is a directory of its own with mode 0700, else
//                       /tmp/pg_seccomp-<uid>, made with mkdir and then checked: its own, mode 0700,
//                       not a link. One that exists and is not so (another local user may create
//                       that name first, with links in it) is never used: the writer then makes
//                       /tmp/pg_seccomp-<uid>-<random> instead, and the readers look there too.
//
// Every file is written through a descriptor of that checked directory as a new file with a
// random name (O_CREAT|O_EXCL|O_NOFOLLOW) renamed over the old one, and every reader (log,
// status, sql install) applies the same checks to the directory and the file before it reads.

import { createHash, randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fstatSync, lstatSync, readdirSync, type Stats } from "node:fs";
import { basename, dirname, isAbsolute, join, resolve } from "node:path";
import {
  makeDirectoryAt, namesIn, openDirectoryNoFollow, openSubdirectory, readRegularFileAt, removeNameAt, UnsafePathError, writeFileAtomicallyAt,
} from "./safe-fs.js";
import { UsageProblem } from "../errors.js";

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

const myUid = (): number => process.getuid?.() ?? 0;

/** Why `st` cannot be the run-state directory of `owner` (undefined when it can). */
export function stateDirProblem(st: Stats, owner: number): string | undefined {
  if (!st.isDirectory()) return "is not a directory";
  if (st.uid !== owner) return `is owned by uid ${st.uid}, not uid ${owner}`;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, "0");
  // root's is read by the server and by DBAs (0755); a user's holds what only that user may see.
  if (owner === 0 ? (st.mode & 0o022) !== 0 : (st.mode & 0o077) !== 0) return `has mode ${mode}${owner === 0 ? ", writable by others" : ", not 0700"}`;
  return undefined;
}

/** The error a writer gives when it has no directory of its own to write in. */
export class RunStateDirError extends UsageProblem {
  override name = "UsageError";
}

/** Opens `dir` (no link followed anywhere) and checks it is `owner`'s run-state directory. */
export function openStateDir(dir: string, owner = myUid()): number {
  return openDirectoryNoFollow(resolve(dir), (_p, st, isLast) => (isLast ? stateDirProblem(st, owner) : undefined));
}

/** Creates `parent/name` (or takes it when it exists) and checks it; the path, or throws UnsafePathError. */
function ownDirectory(parent: string, name: string, mode: number, mustCreate = false): string {
  const parentFd = openDirectoryNoFollow(parent);
  try {
    const created = makeDirectoryAt(parentFd, name, mode);
    if (!created && mustCreate) throw new UnsafePathError(join(parent, name), "exists already");
    const fd = openSubdirectory(parentFd, name);
    if (fd === undefined) throw new UnsafePathError(join(parent, name), "vanished while it was created");
    try {
      const st = fstatSync(fd);
      // The umask does not choose who may read it. One of ours that only we could write (an older
      // pg_seccomp made it 0755) is closed down too: nobody else can have put anything in it.
      if (created || (st.isDirectory() && st.uid === myUid() && (st.mode & 0o022) === 0 && (st.mode & 0o7777) !== mode)) fchmodSync(fd, mode);
      const why = stateDirProblem(fstatSync(fd), myUid());
      if (why) throw new UnsafePathError(join(parent, name), why);
    } finally {
      closeSync(fd);
    }
    return join(parent, name);
  } finally {
    closeSync(parentFd);
  }
}

/** $XDG_RUNTIME_DIR when it is an absolute path to a real directory of ours with mode 0700. */
function usableXdgRuntimeDir(): string | undefined {
  const xdg = process.env.XDG_RUNTIME_DIR;
  if (!xdg || !isAbsolute(xdg)) return undefined;
  try {
    return stateDirProblem(lstatSync(xdg), myUid()) === undefined ? xdg : undefined;
  } catch {
    return undefined;
  }
}

let ensuredDir: string | undefined;
/** What ensureRunStateDir had to say (a squatted /tmp name), for the launcher's output. */
export const runStateNotes: string[] = [];

/**
 * The writer's run-state directory, created if missing and checked (owner, mode, no link); the
 * same path for the rest of the process. Throws RunStateDirError when there is none.
 */
export function ensureRunStateDir(): string {
  if (ensuredDir) return ensuredDir;
  const uid = myUid();
  try {
    if (uid === 0) ensuredDir = ownDirectory(dirname(ROOT_RUN_STATE_DIR), basename(ROOT_RUN_STATE_DIR), 0o755);
    else {
      const xdg = usableXdgRuntimeDir();
      if (xdg) ensuredDir = ownDirectory(xdg, "pg_seccomp", 0o700);
      else {
        try {
          ensuredDir = ownDirectory("/tmp", `pg_seccomp-${uid}`, 0o700);
        } catch (e) {
          if (!(e instanceof UnsafePathError)) throw e;
          // Someone else's, or opened up: never used. One of ours made the same way before (every
          // start, and the supervisor process, find the same one), else a new name nobody could
          // have prepared.
          for (const d of tmpPlaces(uid).slice(1)) {
            try {
              closeSync(openStateDir(d, uid));
              ensuredDir = d;
              break;
            } catch {
              /* not ours: not used */
            }
          }
          for (let i = 0; i < 8 && !ensuredDir; i++) {
            try {
              ensuredDir = ownDirectory("/tmp", `pg_seccomp-${uid}-${randomBytes(6).toString("hex")}`, 0o700, true);
            } catch (again) {
              if (i === 7) throw again;
            }
          }
          runStateNotes.push(`pg_seccomp: warning: ${e.message}: not used; the run state is in ${ensuredDir} instead (remove the other, or set XDG_RUNTIME_DIR)`);
        }
      }
    }
  } catch (e) {
    const where = uid === 0 ? ROOT_RUN_STATE_DIR : `/tmp/pg_seccomp-${uid}`;
    throw new RunStateDirError(
      `cannot use a run-state directory (${where}): ${(e as Error).message}\n` +
        `hint: run as root, or set XDG_RUNTIME_DIR to a directory this user owns with mode 0700`,
      { cause: e },
    );
  }
  return ensuredDir!;
}

/**
 * The run-state directory: the writer's once ensureRunStateDir ran in this process, else where
 * a launcher of this user would put it (without creating anything).
 */
export function runStateDir(): string {
  if (ensuredDir) return ensuredDir;
  const uid = myUid();
  if (uid === 0) return ROOT_RUN_STATE_DIR;
  const xdg = usableXdgRuntimeDir();
  return xdg ? join(xdg, "pg_seccomp") : `/tmp/pg_seccomp-${uid}`;
}

/** Writes `name` in the run-state directory `dir` (ours, checked again now): a new file renamed into place. */
export function writeStateFile(dir: string, name: string, body: string, mode = 0o644): void {
  const fd = openStateDir(dir);
  try {
    writeFileAtomicallyAt(fd, name, body, mode);
  } finally {
    closeSync(fd);
  }
}

/** Writes the run-state file at `path` (its directory must be our checked run-state directory). */
export function writeStatePath(path: string, body: string, mode = 0o644): void {
  writeStateFile(dirname(resolve(path)), basename(path), body, mode);
}

/** Removes `path` from our run-state directory (the name itself, never a link's target); quiet when missing. */
export function removeStatePath(path: string): void {
  let fd: number;
  try {
    fd = openStateDir(dirname(resolve(path)));
  } catch {
    return; // no directory of ours there: nothing of ours to remove
  }
  try {
    removeNameAt(fd, basename(path));
  } catch {
    /* best effort */
  } finally {
    closeSync(fd);
  }
}

/** The names in our run-state directory `dir` (empty when there is none). */
export function stateDirNames(dir: string): string[] {
  let fd: number;
  try {
    fd = openStateDir(dir);
  } catch {
    return [];
  }
  try {
    return namesIn(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * A file of a run-state directory of `owner`'s, read only when the directory passes the writer's
 * checks and the file is a regular file of that owner (no link, no FIFO), at most `maxBytes`.
 */
export function readStateFile(dir: string, name: string, owner = myUid(), maxBytes = 65536): string | undefined {
  let fd: number;
  try {
    fd = openStateDir(dir, owner);
  } catch {
    return undefined;
  }
  try {
    return readRegularFileAt(fd, name, maxBytes, { owner }).toString("utf8");
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** The names in `owner`'s run-state directory `dir`, when it passes the checks (else none). */
function namesOf(dir: string, owner: number): string[] {
  let fd: number;
  try {
    fd = openStateDir(dir, owner);
  } catch {
    return [];
  }
  try {
    return namesIn(fd);
  } catch {
    return [];
  } finally {
    closeSync(fd);
  }
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
 * The last run's record for `dataDir` in `dir`, or undefined. Taken only when the directory is
 * `owner`'s run-state directory and the file a regular file of `owner`'s (readStateFile); it names
 * paths only, which the caller checks again.
 */
export function readLastRun(dataDir: string, dir = runStateDir(), owner = myUid()): LastRun | undefined {
  const text = readStateFile(dir, basename(lastRunPath(dataDir, dir)), owner);
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as LastRun;
    if (typeof v.logPath !== "string" || typeof v.dataDir !== "string" || resolve(v.dataDir) !== resolve(dataDir)) return undefined;
    if (typeof v.startedAt !== "string") return undefined;
    return v;
  } catch {
    return undefined;
  }
}

export function writeRunState(state: RunState, dir = ensureRunStateDir()): string {
  // Another directory (tests): made the same way, and checked, when missing.
  if (dir !== ensuredDir) ownDirectory(dirname(resolve(dir)), basename(resolve(dir)), myUid() === 0 ? 0o755 : 0o700);
  if (state.dataDir) {
    const last: LastRun = { dataDir: state.dataDir, logPath: state.logPath, policyPath: state.policyPath, postmasterPid: state.postmasterPid, startedAt: state.startedAt };
    writeStateFile(dir, basename(lastRunPath(state.dataDir, dir)), JSON.stringify(last, null, 2) + "\n");
  }
  writeStateFile(dir, `${state.postmasterPid}.json`, JSON.stringify(state, null, 2) + "\n");
  return join(dir, `${state.postmasterPid}.json`);
}

export function removeRunState(postmasterPid: number, dir = runStateDir()): void {
  removeStatePath(join(dir, `${postmasterPid}.json`));
  removeStatePath(join(dir, `${postmasterPid}.contexts.json`));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** Where a run state may be: a directory, and the one uid it must belong to (with its files). */
export interface RunStatePlace {
  dir: string;
  owner: number;
}

/** A place whose records the server's user wrote (not ours, not root's). */
export function foreignPlace(p: RunStatePlace): boolean {
  return p.owner !== 0 && p.owner !== myUid();
}

/** /tmp/pg_seccomp-<uid> and the names a launcher of that uid made when that one was not its own. */
function tmpPlaces(uid: number): string[] {
  let names: string[] = [];
  try {
    names = readdirSync("/tmp").filter((n) => n.startsWith(`pg_seccomp-${uid}-`) && /^[0-9a-f]{12}$/.test(n.slice(`pg_seccomp-${uid}-`.length)));
  } catch {
    /* no /tmp */
  }
  return [`/tmp/pg_seccomp-${uid}`, ...names.slice(0, 64).map((n) => `/tmp/${n}`)];
}

/**
 * The run-state directories to look in for a server whose data directory (or postmaster)
 * belongs to `ownerUid`: ours; root's (/run/pg_seccomp: a launcher run as root); and that user's
 * own (a launcher run as the server's user, as pg_ctl and pg_ctlcluster start it). Each with the
 * uid it must belong to.
 */
export function runStatePlaces(ownerUid?: number): RunStatePlace[] {
  const me = myUid();
  const places: RunStatePlace[] = [];
  const add = (dir: string, owner: number) => {
    if (!places.some((p) => p.dir === dir)) places.push({ dir, owner });
  };
  add(runStateDir(), me);
  add(ROOT_RUN_STATE_DIR, 0);
  if (me !== 0) for (const d of tmpPlaces(me)) add(d, me);
  if (ownerUid !== undefined && ownerUid !== me && ownerUid !== 0) {
    add(`/run/user/${ownerUid}/pg_seccomp`, ownerUid);
    for (const d of tmpPlaces(ownerUid)) add(d, ownerUid);
  }
  return places;
}

export const ROOT_RUN_STATE_DIR = "/run/pg_seccomp";

function parseRunState(text: string | undefined): RunState | undefined {
  if (text === undefined) return undefined;
  try {
    const s = JSON.parse(text) as RunState;
    if (typeof s.postmasterPid !== "number" || typeof s.dataDir !== "string" || typeof s.logPath !== "string") return undefined;
    return s;
  } catch {
    return undefined;
  }
}

/**
 * The state of a running server, by postmaster pid or data directory, in `owner`'s run-state
 * directory `dir` (checked as its writer checks it). The paths a record names are checked again
 * where they are used (the log's owner, the policy's). When more than one matches (a record left
 * by a launcher that was killed, its pid reused), the newest.
 */
export function findRunState(by: { pid?: number; dataDir?: string }, dir = runStateDir(), owner = myUid()): RunState | undefined {
  const names = namesOf(dir, owner).filter((n) => /^\d+\.json$/.test(n)); // not last-*.json, nor *.contexts.json
  let best: RunState | undefined;
  for (const n of names.slice(0, 4096)) {
    if (by.pid !== undefined && n !== `${by.pid}.json`) continue;
    const s = parseRunState(readStateFile(dir, n, owner));
    if (!s || !pidAlive(s.postmasterPid)) continue;
    if (by.pid !== undefined ? s.postmasterPid !== by.pid : by.dataDir === undefined || resolve(s.dataDir) !== resolve(by.dataDir)) continue;
    if (!best || String(s.startedAt) > String(best.startedAt)) best = s;
  }
  return best;
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

export function writeContexts(postmasterPid: number, pins: readonly PinnedContext[], dir = ensureRunStateDir()): void {
  writeStateFile(dir, basename(contextsPath(postmasterPid, dir)), JSON.stringify(pins) + "\n");
}

/** The launcher's pins, or undefined (no record, or not readable, or not `owner`'s). */
export function readContexts(postmasterPid: number, dir = runStateDir(), owner = myUid()): PinnedContext[] | undefined {
  const text = readStateFile(dir, basename(contextsPath(postmasterPid, dir)), owner, 16 * 1024 * 1024);
  if (text === undefined) return undefined;
  try {
    const v = JSON.parse(text) as unknown;
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
  /** The uid that directory (and the log it names) must belong to. */
  owner: number;
  postmasterPid: number;
  startedAt: string;
}

/**
 * Every record pg_seccomp run left for a data directory (or postmaster pid), in every place a
 * launcher may have written one: running servers' states, then last-run records, each list
 * newest first. A record from the server's user's directory counts only with a policy root owns
 * (`policyCheck`; `log` does not need one: it reads a log the owner's, nothing root's).
 */
export function serverRecords(by: { dataDir?: string; pid?: number }, ownerUid?: number, policyCheck = true): ServerRecord[] {
  const running: ServerRecord[] = [];
  const last: ServerRecord[] = [];
  for (const p of runStatePlaces(ownerUid)) {
    const foreign = foreignPlace(p);
    const ok = (policyPath: string) => !policyCheck || !foreign || readableRootFile(policyPath);
    const rs = findRunState(by, p.dir, p.owner);
    if (rs && ok(rs.policyPath)) {
      running.push({ policyPath: rs.policyPath, logPath: rs.logPath, running: true, foreign, stateDir: p.dir, owner: p.owner, postmasterPid: rs.postmasterPid, startedAt: String(rs.startedAt) });
    }
    if (by.dataDir === undefined) continue;
    const lr = readLastRun(by.dataDir, p.dir, p.owner);
    if (lr && ok(lr.policyPath)) {
      last.push({ policyPath: lr.policyPath, logPath: lr.logPath, running: false, foreign, stateDir: p.dir, owner: p.owner, postmasterPid: lr.postmasterPid, startedAt: String(lr.startedAt) });
    }
  }
  const newest = (a: ServerRecord, b: ServerRecord) => (a.startedAt < b.startedAt ? 1 : a.startedAt > b.startedAt ? -1 : 0);
  return [...running.sort(newest), ...last.sort(newest)];
}

/**
 * What pg_seccomp run recorded for a data directory: the running server's state, else the last
 * run's, the newest wherever it is (never an older run's record from another place).
 */
export function findServerRecord(dataDir: string, ownerUid?: number): ServerRecord | undefined {
  return serverRecords({ dataDir }, ownerUid)[0];
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
