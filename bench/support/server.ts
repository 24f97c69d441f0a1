// Starting and stopping a PostgreSQL server for a benchmark, unfiltered or under `pg_seccomp run`,
// each in a cgroup of its own so that its CPU time can be read whole.
//
// CPU accounting (issue 12): summing /proc/PID/stat over the postmaster and its live children
// loses or double-counts backends that exit and are reaped between two reads, which under
// `pgbench -C` (a backend per transaction) gave negative CPU per transaction. The kernel's
// cgroup counter has no such gap: every process started by the spawned command (the launcher,
// its supervisor thread and monitoring psql, the postmaster and every backend, live or exited)
// is charged as it runs. The command joins the cgroup before it execs (a shell writes its own pid
// to cgroup.procs, then execs), so nothing it forks escapes. Under `run` the launcher is in the
// group too: its CPU is part of what filtering costs.

import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { postgresArgs, postmasterPid, waitReady, type Cluster } from "../../src/postgres/cluster.js";

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..", "..");
export const CLI = join(ROOT, "dist", "src", "cli", "main.js");

/** util-linux setpriv: switches user and execs, so the spawned pid is the postmaster. */
export const SETPRIV = "/usr/bin/setpriv";

export interface ServerSpec {
  label: string;
  /** Arguments of `pg_seccomp run` before `--`; undefined (and no `wrap`): start postgres directly, unfiltered. */
  runArgs?: string[];
  /**
   * Another command around postgres instead of `run` (`pg_seccomp learn`, `strace -f`): its argv,
   * given postgres's own (`postgres -D DATADIR`). It starts as root and drops to the server's user itself.
   */
  wrap?: (postgresArgv: string[], cluster: Cluster) => string[];
  /** The stopping SIGINT goes to the postmaster, not the spawned command (strace -o FILE blocks fatal signals). */
  signalPostmaster?: boolean;
  /** Exit codes of the spawned command that are not failures (default: 0 only). */
  okCodes?: number[];
  /** How long to wait for pg_isready (default 60 s). */
  readyTimeoutMs?: number;
  /** Extra environment for the launcher (or postgres). */
  env?: NodeJS.ProcessEnv;
}

export interface BenchServer {
  spec: ServerSpec;
  proc: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  alive: () => boolean;
  output: () => string;
  startedAt: Date;
  /** The launcher's pid under run; the postmaster's when unfiltered. */
  spawnedPid: number;
  postmaster: number;
  cgroup: CpuGroup | undefined;
}

// ---------------------------------------------------------------------------------------------
// CPU groups

/** A cgroup whose CPU counter covers a process tree. */
export interface CpuGroup {
  dir: string;
  /** CPU time (user + system) charged so far, µs. */
  usageUs(): number;
  remove(): Promise<void>;
}

let groups = 0;

/** A fresh cgroup: v1 cpuacct if mounted, else v2 (cpu.stat needs no controller). Undefined if neither can be made. */
export function makeCpuGroup(): CpuGroup | undefined {
  const name = `pg_seccomp-bench-${process.pid}-${++groups}`;
  const candidates: Array<[string, (dir: string) => number]> = [
    ["/sys/fs/cgroup/cpuacct", (dir) => Number(readFileSync(join(dir, "cpuacct.usage"), "utf8")) / 1000],
    ["/sys/fs/cgroup/unified", v2Usage],
    ["/sys/fs/cgroup", v2Usage],
  ];
  for (const [base, read] of candidates) {
    if (!existsSync(join(base, "cgroup.procs"))) continue;
    const dir = join(base, name);
    try {
      mkdirSync(dir);
      read(dir);
    } catch {
      continue;
    }
    return {
      dir,
      usageUs: () => read(dir),
      async remove() {
        // The tree is gone once the server exited; a watchdog may take a second to notice.
        for (let i = 0; i < 50; i++) {
          try {
            rmdirSync(dir);
            return;
          } catch {
            await new Promise((r) => setTimeout(r, 100));
          }
        }
      },
    };
  }
  return undefined;
}

function v2Usage(dir: string): number {
  const m = /^usage_usec (\d+)$/m.exec(readFileSync(join(dir, "cpu.stat"), "utf8"));
  if (!m) throw new Error(`${dir}/cpu.stat has no usage_usec`);
  return Number(m[1]);
}

// ---------------------------------------------------------------------------------------------
// Servers

/** The environment the stage gives postgres (run.ts drops NODE_* variables); unfiltered gets the same. */
function serverEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries({ ...process.env, ...extra }).filter(([k]) => !k.startsWith("NODE_")));
}

let current: BenchServer | undefined;

/** The server started last and not stopped yet (for a Ctrl-C handler). */
export function currentServer(): BenchServer | undefined {
  return current;
}

export async function startServer(cluster: Cluster, spec: ServerSpec): Promise<BenchServer> {
  // A postmaster.pid left by a killed server is stale (postgres removes it itself); a live one is not.
  const old = postmasterPid(cluster.dataDir);
  if (old !== undefined && existsSync(`/proc/${old}`)) {
    throw new Error(`a server still holds ${cluster.dataDir} (postmaster.pid names live pid ${old})`);
  }
  const startedAt = new Date();
  const [postgres, ...args] = postgresArgs(cluster);
  const command = spec.wrap
    ? spec.wrap([postgres!, ...args], cluster)
    : spec.runArgs === undefined
      ? [SETPRIV, `--reuid=${cluster.user.uid}`, `--regid=${cluster.user.gid}`, "--init-groups", "--", postgres!, ...args]
      : [process.execPath, CLI, "run", ...spec.runArgs, "--", postgres!, ...args];
  // pg_seccomp (run, learn) gets the whole environment and drops NODE_* for postgres itself;
  // postgres started directly or under another tracer gets the same environment without them.
  const viaNode = command[0] === process.execPath;
  const cgroup = makeCpuGroup();
  // The shell joins the cgroup, then execs: the spawned pid is the command's.
  const argv = cgroup ? ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', cgroup.dir, ...command] : command;
  const proc = spawn(argv[0]!, argv.slice(1), {
    cwd: cluster.root,
    env: viaNode ? { ...process.env, ...spec.env } : serverEnv(spec.env),
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  const keep = (d: Buffer) => {
    out += d.toString();
    if (out.length > 65536) out = out.slice(-32768);
  };
  proc.stdout!.on("data", keep);
  proc.stderr!.on("data", keep);
  let done = false;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    proc.on("exit", (code, signal) => {
      done = true;
      res({ code, signal });
    }),
  );
  const partial = { spec, proc, exited, alive: () => !done, output: () => out, startedAt, spawnedPid: proc.pid!, postmaster: 0, cgroup };
  current = partial;
  try {
    await waitReady(cluster, partial.alive, spec.readyTimeoutMs ?? 60_000);
  } catch (e) {
    proc.kill("SIGKILL");
    await exited;
    await cgroup?.remove();
    current = undefined;
    throw new Error(`${spec.label}: ${(e as Error).message}\n--- server output ---\n${out}`);
  }
  const pm = postmasterPid(cluster.dataDir);
  if (pm === undefined) throw new Error(`${spec.label}: no postmaster.pid after the server became ready`);
  if (spec.runArgs === undefined && !spec.wrap && pm !== proc.pid) {
    throw new Error(`${spec.label}: postmaster.pid says ${pm}, expected the spawned postgres ${proc.pid}`);
  }
  partial.postmaster = pm;
  return partial;
}

/** Fast shutdown (SIGINT); throws if the server exited with an error, unless `expectFailure`. */
export async function stopServer(s: BenchServer, expectFailure = false, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (s.alive()) {
    if (s.spec.signalPostmaster && s.postmaster) process.kill(s.postmaster, "SIGINT");
    else s.proc.kill("SIGINT");
  }
  const timer = setTimeout(() => s.proc.kill("SIGKILL"), timeoutMs);
  const r = await s.exited;
  clearTimeout(timer);
  if (current?.proc === s.proc) current = undefined;
  await s.cgroup?.remove();
  if (!(s.spec.okCodes ?? [0]).includes(r.code ?? -1) && !expectFailure) {
    throw new Error(`${s.spec.label}: the server exited with ${r.code ?? r.signal}\n--- server output ---\n${s.output()}`);
  }
  return r;
}

/** CPU time of the server's whole tree so far (µs); NaN without a cgroup. */
export function serverCpuUs(s: BenchServer): number {
  return s.cgroup ? s.cgroup.usageUs() : NaN;
}

/** Children of a process (the postmaster's: auxiliary processes, backends, zombies not yet reaped). */
export function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The launcher's PG_SECCOMP_STATS=1 line from its output, if it printed one. */
export function launcherStats(output: string): Record<string, number> | undefined {
  for (const line of output.split("\n").reverse()) {
    if (!line.startsWith('{"pg_seccomp_stats"')) continue;
    try {
      return (JSON.parse(line) as { pg_seccomp_stats: Record<string, number> }).pg_seccomp_stats;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
