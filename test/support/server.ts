// Starting a real PostgreSQL under `pg_seccomp run` for integration tests: the CLI as a user
// would run it, a throwaway cluster, and helpers to wait and stop.

import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { createCluster, findPgBinDir, postgresArgs, postmasterPid, waitReady, type Cluster } from "../../src/postgres/cluster.js";
import { seccompSupport } from "../../src/kernel/index.js";
import { scaled } from "./time-scale.js";
import { repoPath } from "./paths.js";

export const BIN = repoPath("dist/src/cli/main.js");

/** Why integration tests cannot run here, or false. */
export function integrationSkip(): string | false {
  if (process.getuid?.() !== 0) return "needs root (to run the server as the postgres user and read filters)";
  const s = seccompSupport();
  if (!s.ok) return `seccomp unavailable: ${s.reason}`;
  try {
    // findPgBinDir throws when PostgreSQL is missing; .ci/run installs it.
    return false;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Debian's PostgreSQL 15 bin directory, or undefined when it is not installed (a skip reason). */
export function pg15BinDir(): string | undefined {
  try {
    return findPgBinDir(15);
  } catch {
    return undefined;
  }
}

// Root-owned and 0755: the server's user may read policies (a standby started as that user
// does) but not change them.
const policyDir = mkdtempSync(join(tmpdir(), "pg_seccomp-policies-"));
chmodSync(policyDir, 0o755);
let policyCount = 0;

/** A policy file in a root-owned directory the server's user cannot write. */
export function writePolicy(text: string, name = `p${++policyCount}.conf`): string {
  const p = join(policyDir, name);
  writeFileSync(p, text, { mode: 0o644 });
  chmodSync(p, 0o644); // whatever the umask: the server's user reads it under pg_ctl
  return p;
}

/** A violation-log path in a root-owned directory: a root `run` refuses one the server's user can write. */
export function logFile(name: string): string {
  return join(policyDir, name);
}

export interface RunningServer {
  proc: ChildProcess;
  cluster: Cluster;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive: () => boolean;
}

export function startRun(cluster: Cluster, runArgs: string[], postgresExtra: string[] = []): RunningServer {
  const proc = spawn(process.execPath, [BIN, "run", ...runArgs, "--", ...postgresArgs(cluster), ...postgresExtra], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  // PG_SECCOMP_TEST_RUN_LOGS=DIR keeps each run's whole output (the server's log with the
  // launcher's) in DIR: the VM lab sets it, as a failed test there leaves nothing else behind.
  const keep = runLogPath(cluster);
  const take = (d: Buffer) => {
    err += d.toString();
    if (keep) appendFileSync(keep, d);
  };
  proc.stderr!.on("data", take);
  proc.stdout!.on("data", take);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on("exit", (code, signal) => {
      done = true;
      res({ code, signal });
    }),
  );
  return { proc, cluster, stderr: () => err, exited, alive: () => !done };
}

let runLogs = 0;
function runLogPath(cluster: Cluster): string | undefined {
  const dir = process.env.PG_SECCOMP_TEST_RUN_LOGS;
  if (!dir) return undefined;
  mkdirSync(dir, { recursive: true });
  const test = basename(process.argv[1] ?? "test").replace(/\.test\.js$/, "");
  return join(dir, `${test}-${process.pid}-${++runLogs}-port${cluster.port}.log`);
}

/** Starts under `policy` and waits until the server accepts connections. */
export async function startReady(cluster: Cluster, runArgs: string[]): Promise<RunningServer> {
  // A postmaster of an earlier run may still be shutting down (its launcher gone first, e.g. a
  // fail-closed stop): wait for it, or the readiness check below would reach that old server.
  const old = postmasterPid(cluster.dataDir);
  if (old !== undefined) {
    await waitFor(() => !existsSync(`/proc/${old}`) || postmasterPid(cluster.dataDir) !== old, 60_000, `the earlier postmaster ${old} to exit`).catch(() => undefined);
  }
  const s = startRun(cluster, runArgs);
  try {
    await waitReady(cluster, s.alive, scaled(60_000));
  } catch (e) {
    // How run ended (or that it was still running): a silent end says nothing else.
    const ended = s.alive() ? "run was still running (killed now)" : await s.exited.then((r) => `run ended with ${r.signal ?? `code ${r.code}`}`);
    s.proc.kill("SIGKILL");
    throw new Error(`${(e as Error).message} (${ended})\n--- run's output ---\n${s.stderr()}`);
  }
  return s;
}

export async function stop(s: RunningServer, signal: NodeJS.Signals = "SIGINT"): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (s.alive()) s.proc.kill(signal);
  const timer = setTimeout(() => s.proc.kill("SIGKILL"), scaled(60_000));
  const r = await s.exited;
  clearTimeout(timer);
  return r;
}

export async function newCluster(conf: string[] = []): Promise<Cluster> {
  return createCluster({ conf });
}

/** Waits for `cond`, up to `timeoutMs` (stretched by the lab's time scale, support/time-scale.ts). */
export async function waitFor(cond: () => boolean, timeoutMs = 30_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + scaled(timeoutMs);
  while (Date.now() < deadline) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The fields of /proc/PID/status as they are written ("NoNewPrivs" → "1", "Seccomp" → "2"). */
export function procStatusFields(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(`/proc/${pid}/status`, "utf8").split("\n")) {
    const m = /^([^:]+):\s*(.*)$/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/**
 * A bundled profile with execve denied to every process (global lists only, as the pg_ctl
 * wrapper run as the server's user requires): a COPY ... TO PROGRAM is then a denied call the
 * log records, while the launcher's own exec of postgres is the one the supervisor lets through.
 */
export function withExecDeniedGlobally(profile: string): string {
  const out = profile.replace(/^(global_syscall_allow = '(?:[^'\n]*?, )?)execve, /m, "$1").replace(/^global_syscall_error = '/m, "global_syscall_error = 'execve, ");
  if (out === profile || !/^global_syscall_error = 'execve, /m.test(out)) throw new Error("withExecDeniedGlobally: the profile's allow or error list was not found");
  return out;
}

/** The lines an attack fixture appended to `path` (one per worker run), once there are `n`. */
export async function reportLines(path: string, n: number): Promise<string[]> {
  await waitFor(() => readFileSync(path, "utf8").trim().split("\n").filter(Boolean).length >= n, 20_000, "the background worker's report");
  return readFileSync(path, "utf8").trim().split("\n");
}
