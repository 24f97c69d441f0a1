// `pg_seccomp learn --verify POLICY`: does the policy keep the server it was learned on alive?
// The server runs under POLICY with every default that denies turned to `kill` (a call the policy
// does not allow kills its process, as it would under a strict production policy), through the
// same procedure as learning (procedure.ts: shortened timers waited out, the workload, an
// immediate stop, restart and recovery, an in-place crash restart). It passes only when nothing
// was denied: no call answered error, trap or kill by the supervisor, no process killed by the
// kernel (its audit records in /dev/kmsg, for the pids of this server), the workload succeeded
// and the server came back from both crashes.

import type { Action } from "../policy/actions.js";
import { loadPolicyFile, PROCESS_KINDS, type FilterSpec, type Policy } from "../policy/policy.js";
import { hostArch, type Arch } from "../syscalls/index.js";
import { dataDirOf, LaunchError, serverUser } from "../launcher/run.js";
import { dataDirForRun } from "../host/data-dir.js";
import { rmSync } from "node:fs";
import { resolve } from "node:path";
import { runStandardSet, standardSetArgs } from "./standard-set.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { eventContextKey } from "./learn.js";
import { formatCoverage, parseKmsgKills, rateLimitNotes, readKmsg, runProcedure, type Coverage } from "./procedure.js";

/** A default that denies becomes kill; allow and log stay (log is the policy author's choice to watch, not deny). */
function killDefault(a: Action): Action {
  return a.kind === "error" || a.kind === "terminate" || a.kind === "trap" ? { kind: "kill" } : a;
}

function withKill(f: FilterSpec): FilterSpec {
  return { ...f, defaultAction: killDefault(f.defaultAction) };
}

/** The policy with every denying default (global, session, roles, databases, backend types) turned to kill. */
export function killDefaultPolicy(p: Policy): Policy {
  const mapAll = <K>(m: Map<K, FilterSpec>) => new Map([...m].map(([k, f]) => [k, withKill(f)] as const));
  return { ...p, global: withKill(p.global), session: withKill(p.session), roles: mapAll(p.roles), databases: mapAll(p.databases), processes: mapAll(p.processes),
    ...(p.walsenderWithDatabase ? { walsenderWithDatabase: withKill(p.walsenderWithDatabase) } : {}) };
}

export interface Denial {
  syscall: string;
  context: string;
  action: string;
  count: number;
  pid: number;
  process: string;
}

/** Denials from the supervisor's events, one per (syscall, context, action). */
export function denials(events: readonly ViolationEvent[]): Denial[] {
  const out = new Map<string, Denial>();
  for (const e of events) {
    if (e.action !== "error" && e.action !== "terminate" && e.action !== "kill" && e.action !== "trap") continue;
    const context = eventContextKey(e);
    const k = `${e.syscall} ${context} ${e.action}`;
    const d = out.get(k);
    if (d) d.count++;
    else out.set(k, { syscall: e.syscall, context, action: e.action, count: 1, pid: e.pid, process: e.process.replace(/[\x00-\x1f\x7f]+/g, " ").trim() });
  }
  return [...out.values()].sort((a, b) => a.syscall.localeCompare(b.syscall) || a.context.localeCompare(b.context));
}

export interface VerifyOptions {
  policyPath: string;
  command: string[];
  workload?: string;
  user?: string;
  arch?: Arch;
  logPath?: string;
  insecurePolicyPermissions?: boolean;
  timerWaitS?: number;
  /** The standard set after the workload (standard-set.ts; default true). */
  standard?: boolean;
  say: (line: string) => void;
}

export interface VerifyResult {
  passed: boolean;
  /** One line per problem (empty when passed). */
  problems: string[];
  denied: Denial[];
  killed: { pid: number; syscall: string }[];
  coverage: Coverage;
  /** Calls the policy logs (not denials; listed for information). */
  logged: string[];
}

export async function verify(o: VerifyOptions): Promise<VerifyResult> {
  const arch = o.arch ?? hostArch();
  if (!o.command[0]) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D DATADIR");
  const args = o.command.slice(1);
  const given = dataDirOf(args);
  if (!given) throw new LaunchError("--verify needs the data directory (-D DATADIR or PGDATA)");
  if (o.workload === undefined) throw new LaunchError("--verify needs --workload: the policy is verified on the workload it was learned on");
  const user = serverUser(o.user);
  let dataDir: string;
  try {
    // -D may be a configuration directory (Debian's): postmaster.pid is in its data_directory.
    dataDir = dataDirForRun(given, resolve(o.command[0]), args, user).dataDir;
  } catch (e) {
    throw new LaunchError((e as Error).message);
  }
  const policy = killDefaultPolicy(loadPolicyFile(o.policyPath));
  const events: ViolationEvent[] = [];
  const said = new Set<string>();
  const rateLimit = rateLimitNotes();
  const standard = o.standard ?? true;
  const set = standard ? standardSetArgs(o.command[0], given, user) : { args: [] };
  o.say(
    `verifying ${o.policyPath}: every denying default turned to kill; the workload${standard ? ", the standard set (WAL burst, CREATE DATABASE, temp files, base backup, archiver round)" : ""}, timers, crash recovery`,
  );
  const proc = await runProcedure({
    policy, policyPath: o.policyPath, arch, command: o.command, dataDir, workload: o.workload, extraArgs: set.args,
    ...(standard
      ? {
          afterWorkload: async (s, c) => {
            const archiving = (await s.sql("show archive_mode").catch(() => "off")) !== "off";
            await runStandardSet(s, { major: c.major, line: c.line, failures: c.failures, user, archiving });
          },
        }
      : {}),
    ...(o.user !== undefined ? { user: o.user } : {}), ...(o.logPath !== undefined ? { logPath: o.logPath } : {}),
    insecurePolicyPermissions: o.insecurePolicyPermissions ?? false, ...(o.timerWaitS !== undefined ? { timerWaitS: o.timerWaitS } : {}),
    onEvent: (e) => {
      events.push(e);
      // The first of each kind is said as it happens; denials() counts them all at the end.
      const k = `${e.syscall} ${eventContextKey(e)} ${e.action}`;
      if (e.action !== "log" && !said.has(k)) {
        said.add(k);
        o.say(`denied: ${e.syscall} in ${eventContextKey(e)} (${e.action}; pid ${e.pid})`);
      }
    },
    line: (l) => void (rateLimit.take(l) || o.say(l)),
  }).finally(() => {
    if (set.archiveDir) rmSync(set.archiveDir, { recursive: true, force: true });
    const limited = rateLimit.summary();
    if (limited) o.say(limited);
  });
  // Kernel kills of this server's processes (other servers on the machine are not ours to judge).
  const killed = parseKmsgKills(readKmsg(), arch, proc.kmsgBefore).filter((k) => proc.pids.has(k.pid) || proc.runs.some((r) => r.pid === k.pid));
  const denied = denials(events);
  const problems = [
    ...denied.map((d) => `denied: ${d.syscall} in ${d.context} (${d.action}, ${d.count} call${d.count === 1 ? "" : "s"}; first pid ${d.pid}: ${d.process})`),
    ...killed.map((k) => `killed by the kernel: pid ${k.pid} in ${k.syscall}`),
    ...proc.failures,
  ];
  if (proc.coverage.missing.length > 0) problems.push(`not covered: ${proc.coverage.missing.join("; ")}`);
  const recorded = new Set(events.map((e) => eventContextKey(e).split("/")[0]!));
  proc.coverage.recorded = [...recorded].sort();
  for (const l of formatCoverage(proc.coverage, PROCESS_KINDS)) o.say(l);
  const logged = [...new Set(events.filter((e) => e.action === "log").map((e) => `${e.syscall} in ${eventContextKey(e)}`))].sort();
  return { passed: problems.length === 0, problems, denied, killed, coverage: proc.coverage, logged };
}
