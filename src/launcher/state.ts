// A small record `run` keeps while a server runs, so that `status` and `log` can find the
// policy, the log and the postmaster without being told. It lives where the launcher's user
// can write and the server's user (when different) cannot: /run/pg_seccomp as root, else
// $XDG_RUNTIME_DIR/pg_seccomp or /tmp/pg_seccomp-<uid>.

import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync, renameSync } from "node:fs";
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
  if (uid === 0) return "/run/pg_seccomp";
  if (process.env.XDG_RUNTIME_DIR) return join(process.env.XDG_RUNTIME_DIR, "pg_seccomp");
  return `/tmp/pg_seccomp-${uid}`;
}

export function writeRunState(state: RunState, dir = runStateDir()): string {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
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

/** The state of a running server, by postmaster pid or data directory. */
export function findRunState(by: { pid?: number; dataDir?: string }, dir = runStateDir()): RunState | undefined {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith(".json"));
  } catch {
    return undefined;
  }
  for (const n of names) {
    let s: RunState;
    try {
      s = JSON.parse(readFileSync(join(dir, n), "utf8")) as RunState;
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
