// The reviewers' first objection: a filter whose configuration the server can change is no
// protection. `run` refuses a policy file (or any file it includes) that the server's OS user
// could change: owned by that user, group- or world-writable, inside PGDATA, or reached through a
// directory or a symbolic link the server's user could replace. The same route check guards the
// violation log's directory (a root launcher appends to it).
//
// A route is followed the way the kernel follows it: component by component from "/", and at
// each symbolic link the link itself is checked (its owner, and that the server's user cannot
// create or replace names in its directory, sticky bit or not) before its target is followed.
// Every directory on every route is checked. A name that does not exist yet (an
// include_if_exists target) is refused when the server's user could create it.

import { lstatSync, readlinkSync, realpathSync, type Stats } from "node:fs";
import { dirname, isAbsolute, resolve, sep } from "node:path";

export interface PermissionProblem {
  path: string;
  problem: string;
}

export interface ServerIdentity {
  uid: number;
  /** The user's groups (primary and supplementary). */
  gids: readonly number[];
  name: string;
}

const S_ISVTX = 0o1000;
const MAX_LINKS = 40; // the kernel's limit on symbolic links in one lookup

/**
 * What the server's user could do in a directory: undefined when nothing. `strict` when a name
 * that is not there yet matters (the server's user must not be able to create names in it at
 * all, so a sticky world-writable directory like /tmp is refused too); otherwise the question
 * is whether it could replace an entry it does not own (which a sticky bit prevents).
 */
export function directoryProblem(st: Stats, server: ServerIdentity, strict: boolean): string | undefined {
  if (server.uid !== 0 && st.uid === server.uid) return `directory is owned by the server's user ${server.name}, who could change it`;
  const sticky = (st.mode & S_ISVTX) !== 0;
  const because = sticky ? " (the sticky bit does not stop the server's user from creating names in it)" : "";
  if ((st.mode & 0o002) !== 0 && (strict || !sticky)) return `directory is world-writable${because}`;
  if ((st.mode & 0o020) !== 0 && server.gids.includes(st.gid) && (strict || !sticky)) {
    return `directory is group-writable by a group of the server's user (gid ${st.gid})${because}`;
  }
  return undefined;
}

/** What is wrong with a file the launcher trusts: undefined when nothing. */
export function fileProblem(st: Pick<Stats, "uid" | "gid" | "mode">, server: ServerIdentity): string | undefined {
  if (server.uid !== 0 && st.uid === server.uid) return `file is owned by the server's user ${server.name}, who could change it`;
  if ((st.mode & 0o002) !== 0) return "file is world-writable";
  if ((st.mode & 0o020) !== 0) return `file is group-writable (group ${st.gid})`;
  return undefined;
}

export type RouteEnd =
  /** An existing regular file (a policy file). */
  | "file"
  /** A file that may be missing, and could appear later (include_if_exists). */
  | "file-or-missing"
  /** A directory in which new names matter (include_dir, the log's directory). */
  | "directory";

export interface Route {
  /** The real path the route ends at (links resolved); for a missing name, where it would be. */
  real: string;
  exists: boolean;
}

/** Collects problems, each path and problem once. */
export class Problems {
  readonly list: PermissionProblem[] = [];
  private readonly seen = new Set<string>();
  add(path: string, problem: string | undefined): void {
    if (!problem) return;
    const key = `${path}\0${problem}`;
    if (this.seen.has(key)) return;
    this.seen.add(key);
    this.list.push({ path, problem });
  }
}

function errCode(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
}

function join1(dir: string, name: string): string {
  return dir === "/" ? `/${name}` : `${dir}/${name}`;
}

/**
 * Follows `path` as the kernel would and records every problem on the way. Returns where it
 * ends, or undefined when it could not be followed (the reason is among the problems).
 */
export function checkRoute(path: string, end: RouteEnd, server: ServerIdentity, problems: Problems = new Problems()): Route | undefined {
  const abs = isAbsolute(path) ? path : resolve(path);
  let pending = abs.split("/");
  let dir = "/";
  let links = 0;
  let dirStat: Stats;
  try {
    dirStat = lstatSync("/");
  } catch (e) {
    problems.add("/", `cannot be checked (${errCode(e)})`);
    return undefined;
  }
  problems.add("/", directoryProblem(dirStat, server, end === "directory" && abs.split("/").filter(Boolean).length === 0));
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === "" || name === ".") continue;
    if (name === "..") {
      dir = dirname(dir); // `dir` is a real path (no links), so its parent is the lexical one
      continue;
    }
    const here = join1(dir, name);
    const last = pending.every((n) => n === "" || n === ".");
    let st: Stats;
    try {
      st = lstatSync(here);
    } catch (e) {
      if (errCode(e) === "ENOENT" && last && end === "file-or-missing") {
        // Not there now; whoever can create names in `dir` can make it appear.
        const why = directoryProblem(dirStat, server, true);
        if (why) problems.add(dir, `${why}, so the server's user could create ${name} there`);
        return { real: here, exists: false };
      }
      problems.add(here, errCode(e) === "ENOENT" ? "does not exist" : `cannot be checked (${errCode(e)})`);
      return undefined;
    }
    if (st.isSymbolicLink()) {
      if (++links > MAX_LINKS) {
        problems.add(abs, "has too many levels of symbolic links");
        return undefined;
      }
      if (server.uid !== 0 && st.uid === server.uid) problems.add(here, `symbolic link is owned by the server's user ${server.name}`);
      // A link the server's user can replace (or create, in a sticky directory) leads anywhere.
      const why = directoryProblem(dirStat, server, true);
      if (why) problems.add(dir, `${why}, and it holds the symbolic link ${name}`);
      let target: string;
      try {
        target = readlinkSync(here);
      } catch (e) {
        problems.add(here, `cannot be read (${errCode(e)})`);
        return undefined;
      }
      if (target.startsWith("/")) {
        dir = "/";
        dirStat = lstatSync("/");
      }
      pending = [...target.split("/"), ...pending];
      continue;
    }
    if (st.isDirectory()) {
      const endsHere = last && end === "directory";
      problems.add(here, directoryProblem(st, server, endsHere));
      dir = here;
      dirStat = st;
      continue;
    }
    if (!last) {
      problems.add(here, "is not a directory");
      return undefined;
    }
    if (end === "directory") {
      problems.add(here, "is not a directory");
      return undefined;
    }
    if (!st.isFile()) {
      problems.add(here, "is not a regular file");
      return undefined;
    }
    problems.add(here, fileProblem(st, server));
    return { real: here, exists: true };
  }
  if (end !== "directory") {
    problems.add(abs, "is a directory");
    return undefined;
  }
  return { real: dir, exists: true };
}

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

/**
 * The problems with a policy: its files (every one read, the main file first), and the places
 * it names that may hold files later (include_if_exists targets that are missing now, include_dir
 * directories; see policy.includePlaces).
 */
export function checkPolicyPermissions(
  files: readonly string[],
  server: ServerIdentity,
  dataDir: string | undefined,
  places: readonly { path: string; kind: "file-or-missing" | "directory" }[] = [],
): PermissionProblem[] {
  const problems = new Problems();
  let data: string | undefined;
  if (dataDir) {
    try {
      data = realpathSync(resolve(dataDir));
    } catch {
      data = resolve(dataDir);
    }
  }
  const all = [...files.map((path) => ({ path, kind: "file" as RouteEnd })), ...places];
  for (const { path, kind } of all) {
    const route = checkRoute(path, kind, server, problems);
    if (route && data && (within(route.real, data) || within(resolve(path), data))) {
      problems.add(path, `is inside the data directory ${data}, which the server can write`);
    }
  }
  return problems.list;
}

/**
 * The problems with a violation-log path for a root launcher: its directory must be one the
 * server's user cannot create, replace or link names in (any route to it included), and the
 * log itself, when it exists, a regular file (not a link) the server's user does not own.
 */
export function checkLogPath(path: string, server: ServerIdentity): PermissionProblem[] {
  const problems = new Problems();
  const abs = resolve(path);
  const name = abs.slice(abs.lastIndexOf("/") + 1);
  if (!name) return [{ path, problem: "is not a file name" }];
  const route = checkRoute(dirname(abs), "directory", server, problems);
  if (route) {
    const here = join1(route.real, name);
    try {
      const st = lstatSync(here);
      if (st.isSymbolicLink()) problems.add(abs, "is a symbolic link");
      else if (!st.isFile()) problems.add(abs, "is not a regular file");
      else problems.add(abs, fileProblem(st, server));
    } catch (e) {
      if (errCode(e) !== "ENOENT") problems.add(abs, `cannot be checked (${errCode(e)})`);
    }
  }
  return problems.list;
}
