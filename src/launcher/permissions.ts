// The reviewers' first objection: a filter whose configuration the server can change is no
// protection. `run` refuses a policy file (or any file it includes) that the server's OS user
// could change: owned by that user, group- or world-writable, inside PGDATA, or in a directory
// the server's user could replace it in.

import { lstatSync, realpathSync, statSync } from "node:fs";
import { dirname, resolve, sep } from "node:path";

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

function within(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith(sep) ? dir : dir + sep);
}

export function checkPolicyPermissions(files: readonly string[], server: ServerIdentity, dataDir: string | undefined): PermissionProblem[] {
  const problems: PermissionProblem[] = [];
  const seen = new Set<string>();
  const data = dataDir ? safeRealpath(resolve(dataDir)) : undefined;
  for (const file of files) {
    const real = safeRealpath(resolve(file));
    if (data && within(real, data)) {
      problems.push({ path: file, problem: `is inside the data directory ${data}, which the server can write` });
    }
    if (real !== resolve(file) && lstatSync(resolve(file)).isSymbolicLink()) {
      checkOne(dirname(resolve(file)), server, problems, seen, true);
    }
    checkOne(real, server, problems, seen, false);
    for (let d = dirname(real); ; d = dirname(d)) {
      checkOne(d, server, problems, seen, true);
      if (d === dirname(d)) break;
    }
  }
  return problems;
}

function checkOne(path: string, server: ServerIdentity, problems: PermissionProblem[], seen: Set<string>, isDir: boolean): void {
  if (seen.has(path)) return;
  seen.add(path);
  const st = statSync(path);
  const what = isDir ? "directory" : "file";
  if (st.uid === server.uid && server.uid !== 0) {
    problems.push({ path, problem: `${what} is owned by the server's user ${server.name}, who could change it` });
  }
  const sticky = isDir && (st.mode & S_ISVTX) !== 0;
  if ((st.mode & 0o002) !== 0 && !sticky) problems.push({ path, problem: `${what} is world-writable` });
  if ((st.mode & 0o020) !== 0 && !sticky) {
    if (!isDir || server.gids.includes(st.gid)) problems.push({ path, problem: `${what} is group-writable (group ${st.gid})` });
  }
}

function safeRealpath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
