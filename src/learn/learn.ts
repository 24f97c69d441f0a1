// `pg_seccomp learn`: the seed's learning procedure (steps 1-8), done by the supervisor instead
// of auditd. The server runs under a *learning* policy made from a base policy: whatever the
// base allows stays allowed, decided in the kernel; every other call is answered `log`, so it
// runs exactly as it would without a filter and is reported to the supervisor with the context
// of the process that made it. At the end we write a seed-format policy composed as the bundled
// profiles are (composeProfile): what was learned (in any context) ∪ the floor ∪ the base's allow
// list allowed everywhere, what static analysis finds reachable and nothing used logged
// everywhere; a context is narrowed only by the base's own lists and --deny-per-context.
//
// Pure parts (learning policy, recording, rendering, merging) are exported for unit tests; the
// run itself (learn()) drives runServer().
//
// This file runs the workload and writes the result; learn-record.ts holds the learning policy
// and the record of what was learned, learn-render.ts the output policy.

import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve } from "node:path";
import { loadPolicyFile, PROCESS_KINDS, type Policy } from "../policy/policy.js";
import { hostArch, type Arch } from "../syscalls/index.js";
import { dataDirOf, LaunchError, serverIdentity, serverUser, type RunResult } from "../launcher/run.js";
import { starterProfile } from "../launcher/profile-choice.js";
import { analyzeServerFiles } from "../launcher/analyzed-profile.js";
import { checkLogPath } from "../host/permissions.js";
import { dataDirForRun } from "../host/data-dir.js";
import { hotBaseText, readFloor, readHotCalls } from "../policy/bundled-lists.js";
import { parseFloor } from "../analyze/profile.js";
import { syscallNumber } from "../syscalls/index.js";
import { formatCoverage, rateLimitNotes, runProcedure, serverEndpoint, type Coverage, type ProcedureResult } from "./procedure.js";
import type { ViolationEvent } from "../host/violation-event.js";
import {
  type Learned, type LearnedFile, type NewCall, cleanTitle, eventContextKey, groupLearned, learningPolicy, mergeLearned, newCalls, outputKey, parseContextKey, parseLearnedPolicy, recordEvent,
} from "./learn-record.js";
import { plural, renderLearnedPolicy } from "./learn-render.js";

// The learning policy, the record and the output policy are part of learn's interface (tests, verify).
export * from "./learn-record.js";
export * from "./learn-render.js";

// ---------------------------------------------------------------------------------------------
// 5. The run

export interface LearnOptions {
  /** postgres and its arguments (after --). */
  command: string[];
  /** Where the learned policy goes. */
  out: string;
  /**
   * A policy file, "none", "starter" (the bundled starter profile), or undefined for the default:
   * the floor with the hot-path calls allowed (per-context learning at near-unfiltered speed).
   */
  base?: string;
  /** An earlier output to fold in; a missing file counts as nothing learned yet. */
  merge?: string;
  /** Write over the --merge input (-o the same file). */
  force?: boolean;
  /** A shell command run as the server's OS user once the server accepts connections. */
  workload?: string;
  /** The server's OS user (when root). */
  user?: string;
  perRole?: boolean;
  allContexts?: boolean;
  arch?: Arch;
  /** The violation log (every learned call is written to it as well). */
  logPath?: string;
  insecurePolicyPermissions?: boolean;
  /** Shorten the periodic timers and wait for them (default true). */
  timers?: boolean;
  /** The crash round (default true). */
  crash?: boolean;
  /** How long to wait for the timer paths, from the server's start (seconds). */
  timerWaitS?: number;
  /**
   * Calls the DBA wants denied in every context that ran while learning and did not use them
   * (the only narrowing of a context below the global lists besides the base's own lists).
   */
  denyPerContext?: string[];
  /** Messages, one line each (stderr). */
  say: (line: string) => void;
  /** A progress line updated in place: set when stderr is a terminal. */
  tty?: { write: (s: string) => void };
}

export interface LearnResult {
  out: string;
  /** (context, syscall) pairs no earlier round had seen. */
  newCalls: NewCall[];
  /** Calls recorded this round. */
  calls: number;
  learned: Learned;
  /** The server runs: the first, and the restart after the immediate stop. */
  runs: RunResult[];
  /** "N new syscalls this round" (0: nothing new), with "; INCOMPLETE ..." when coverage is short. */
  summary: string;
  /** The coverage report; complete when coverage.missing is empty. */
  coverage: Coverage;
  complete: boolean;
  /** The workload's exit status (undefined without --workload). */
  workloadStatus?: { code: number | null; signal: NodeJS.Signals | null };
}

export { serverEndpoint };

/** The round did not go through (the workload failed, the server did not come back): exit 1, nothing written. */
export class LearnFailed extends Error {
  override name = "LearnFailed";
}

function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(h ? 2 : 1, "0");
  return `${h ? `${h}:` : ""}${mm}:${String(s % 60).padStart(2, "0")}`;
}

function serverVersion(postgres: string): string {
  try {
    return `${execFileSync(postgres, ["--version"], { encoding: "utf8" }).trim()} (${resolve(postgres)})`;
  } catch {
    return resolve(postgres);
  }
}

/** Writes atomically (a temp file in the same directory, renamed), root-readable policy permissions (0644). */
function writeOutput(path: string, text: string): void {
  const tmp = join(dirname(resolve(path)), `.${basename(path)}.${process.pid}.tmp`);
  try {
    writeFileSync(tmp, text, { mode: 0o644, flag: "wx" });
    chmodSync(tmp, 0o644);
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw e;
  }
}

/** A root-owned 0755 directory with a 0644 policy file in it (the server's user reads, cannot change it). */
function tempPolicy(text: string): { dir: string; path: string } {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-learn-"));
  chmodSync(dir, 0o755);
  const path = join(dir, "learning-base.conf");
  writeFileSync(path, text, { mode: 0o644 });
  return { dir, path };
}

export interface ResolvedBase {
  base: Policy | undefined;
  path: string | undefined;
  label: string;
  tmpDir?: string;
}

/** The base a learning run starts from (see LearnOptions.base). */
export function resolveBase(base: string | undefined, postgres: string, arch: Arch): ResolvedBase {
  if (base === "none") return { base: undefined, path: undefined, label: "none" };
  if (base === "starter") {
    const path = starterProfile(postgres, arch);
    return { base: loadPolicyFile(path), path, label: `${resolve(path)} (bundled starter profile)` };
  }
  if (base !== undefined) return { base: loadPolicyFile(base), path: base, label: resolve(base) };
  const t = tempPolicy(hotBaseText(readFloor(), readHotCalls()));
  return { base: loadPolicyFile(t.path), path: t.path, label: "default (profiles/floor.conf + the hot-path calls of profiles/learn-hot.conf)", tmpDir: t.dir };
}

/** `pg_seccomp learn`: run the server under the learning policy, then write what it used. */
export async function learn(opts: LearnOptions): Promise<LearnResult> {
  const { say } = opts;
  const arch = opts.arch ?? hostArch();
  const postgres = opts.command[0];
  if (!postgres) throw new LaunchError("give the postgres command after --, e.g. -- /usr/lib/postgresql/15/bin/postgres -D DATADIR");
  const args = opts.command.slice(1);
  const user = serverUser(opts.user);
  const given = dataDirOf(args);
  if (opts.workload !== undefined && !given) throw new LaunchError("--workload needs the data directory (-D DATADIR or PGDATA) to find the server's port and socket");
  if (opts.merge !== undefined && resolve(opts.merge) === resolve(opts.out) && !opts.force) {
    throw new LaunchError(`-o ${opts.out} is the --merge input: write the new round to another file (then compare and rename), or pass --force to replace it`);
  }
  // -D may be a configuration directory (Debian's /etc/postgresql/15/main): postmaster.pid is in
  // the data directory it names, as run finds it.
  let dataDir: string | undefined;
  try {
    dataDir = given !== undefined ? dataDirForRun(given, resolve(postgres), args, user).dataDir : undefined;
  } catch (e) {
    throw new LaunchError((e as Error).message);
  }
  // run refuses a policy the server's user could change: refuse such an -o now, not after learning.
  const server = serverIdentity(user);
  const outProblems = checkLogPath(opts.out, server).map((p) => `  ${p.path}: ${p.problem}`);
  if (dataDir && (resolve(opts.out) + "/").startsWith(resolve(dataDir) + "/")) outProblems.push(`  ${opts.out}: is inside the data directory ${dataDir}, which the server can write`);
  if (outProblems.length > 0) {
    if (!opts.insecurePolicyPermissions) {
      throw new LaunchError(
        `refusing -o ${opts.out}: the server's user (${server.name}) could change the policy written there, and run would refuse it\n${outProblems.join("\n")}\n` +
          `hint: write it outside the data directory, in a directory only root can write (e.g. /etc/pg_seccomp)`,
      );
    }
    say(`WARNING: --insecure-policy-permissions: -o ${opts.out} is one the server's user could change (for tests only)`);
  }
  const deny = [...new Set(opts.denyPerContext ?? [])];
  const unknownDeny = deny.filter((n) => syscallNumber(arch, n) === undefined);
  if (unknownDeny.length > 0) throw new LaunchError(`--deny-per-context: ${unknownDeny.join(", ")}: not ${arch} syscall names`);

  // What static analysis finds reachable: logged in the output, in every context (composeProfile).
  let analyzed: ReturnType<typeof analyzeServerFiles>;
  try {
    analyzed = analyzeServerFiles({ postgres, arch, ...(given ? { dataDir: given } : {}), ...(user ? { user } : {}) });
  } catch (e) {
    throw new LaunchError(`${(e as Error).message}\nhint: learn composes its policy with what pg_seccomp analyze finds reachable in the server's files; check that ${postgres} is a PostgreSQL server`);
  }
  say(`static analysis: ${plural(analyzed.analysis.syscalls.length, "syscall")} reachable in ${postgres}, ${plural(analyzed.analysis.binaries.length, "file")}${analyzed.extensions.length ? ` (modules ${analyzed.extensions.join(", ")})` : ""}`);

  const parsedFloor = parseFloor(readFloor());
  const floor = { allow: parsedFloor.allow, kill: parsedFloor.kill.split(",").map((k) => k.trim()).filter(Boolean), tagOf: parsedFloor.tagOf, reasons: parsedFloor.reasons, harden: parsedFloor.harden };
  const resolved = resolveBase(opts.base, postgres, arch);
  const { base } = resolved;
  const baseLabel = resolved.label;
  // A call the base allows is decided in the kernel and never reported, and the floor's calls are
  // those runs cannot be trusted to show: learning cannot say which contexts use them.
  const unlearnable = deny.filter((n) => floor.allow.includes(n) || (base?.global.entries ?? []).some((e) => e.action.kind === "allow" && e.kind === "syscall" && e.name === n));
  if (unlearnable.length > 0) {
    if (resolved.tmpDir) rmSync(resolved.tmpDir, { recursive: true, force: true });
    throw new LaunchError(`--deny-per-context: ${unlearnable.join(", ")}: allowed by the learning base or the floor, so never learned per context\nhint: learn over a base that does not allow them (--base none, or your own --base FILE)`);
  }

  let previous: LearnedFile = { learned: new Map(), rounds: 0 };
  if (opts.merge !== undefined) {
    if (existsSync(opts.merge)) {
      previous = parseLearnedPolicy(readFileSync(opts.merge, "utf8"));
      if (previous.base !== undefined && previous.base !== baseLabel) say(`note: ${opts.merge} was learned with base ${previous.base}; this round uses ${baseLabel}`);
    } else {
      say(`note: ${opts.merge} does not exist yet: nothing learned before this round`);
    }
  }

  const policy = learningPolicy(base);
  // run records the policy's path in its run state (for status and sql install).
  let tmpDir = resolved.tmpDir;
  let policyPath = resolved.path;
  if (!policyPath) {
    const t = tempPolicy("# pg_seccomp learn --base none: every call is logged\nglobal_syscall_default = 'log'\nsyscall_unknown_action = 'default'\n");
    tmpDir = t.dir;
    policyPath = t.path;
  }

  const round: Learned = new Map();
  let calls = 0;
  const names = new Set<string>();
  const started = Date.now();
  const roundStart = new Date(started).toISOString();
  const perRole = opts.perRole ?? false;
  const prevGrouped = groupLearned(previous.learned, perRole);
  const status = () =>
    `learning: ${elapsed(Date.now() - started)} elapsed, ${plural(calls, "call")} recorded, ${plural(names.size, "distinct syscall")}, ${plural(round.size, "context")}`;
  const tty = opts.tty;
  // One line per step: the calls first seen since the last step are summarized on one line, and
  // the supervisor's rate-limit notes are counted, not printed (summarized at the end).
  let pending: string[] = [];
  const rateLimit = rateLimitNotes();
  const print = (s: string) => {
    if (tty) tty.write(`\r\x1b[K${s}\n${status()}`);
    else say(s);
  };
  const flushNew = () => {
    if (pending.length === 0) return;
    const shown = pending.slice(0, 12).join(", ");
    print(`  + ${plural(pending.length, "call")} first seen: ${shown}${pending.length > 12 ? `, ... (${pending.length - 12} more)` : ""}`);
    pending = [];
  };
  const line = (s: string) => {
    if (rateLimit.take(s)) return;
    flushNew();
    print(s);
  };
  const ticker = setInterval(() => (tty ? tty.write(`\r\x1b[K${status()}`) : say(status())), tty ? 1000 : 10_000);
  ticker.unref();

  const onEvent = (e: ViolationEvent) => {
    if (e.action !== "log") {
      line(`warning: ${e.syscall} in ${e.context} was answered ${e.action}, not logged (pid ${e.pid}: ${cleanTitle(e.process).slice(0, 60)})`);
      return;
    }
    calls++;
    names.add(e.syscall);
    if (recordEvent(round, e)) {
      const key = outputKey(eventContextKey(e), perRole);
      const known = prevGrouped.get(key)?.has(e.syscall) || prevGrouped.get(parseContextKey(key).context)?.has(e.syscall);
      pending.push(`${e.syscall} (${eventContextKey(e)}${known ? ", seen before" : ""})`);
    }
  };
  line(`learning with base ${baseLabel}${opts.workload === undefined ? "; stop the server with Ctrl-C (SIGINT) or SIGTERM to write " + opts.out : ""}`);
  let proc: ProcedureResult;
  try {
    proc = await runProcedure({
      policy, policyPath, arch, command: opts.command, dataDir, ...(opts.workload !== undefined ? { workload: opts.workload } : {}),
      ...(opts.user !== undefined ? { user: opts.user } : {}), ...(opts.logPath !== undefined ? { logPath: opts.logPath } : {}),
      insecurePolicyPermissions: opts.insecurePolicyPermissions ?? false, timers: opts.timers ?? true, crash: opts.crash ?? true,
      ...(opts.timerWaitS !== undefined ? { timerWaitS: opts.timerWaitS } : {}), onEvent, line,
    });
  } finally {
    flushNew();
    clearInterval(ticker);
    if (tty) tty.write(`\r\x1b[K`);
    const limited = rateLimit.summary();
    if (limited) say(limited);
    if (tmpDir) rmSync(tmpDir, { recursive: true, force: true });
  }
  // A round that did not go through must not look like one: nothing is written.
  if (proc.failures.length > 0) {
    throw new LearnFailed(`learning failed: ${proc.failures.join("; ")}; ${opts.out} is left as it was (nothing written)`);
  }

  proc.coverage.recorded = [...new Set([...round.keys()].map((k) => parseContextKey(k).context))].sort();
  const coverageLines = formatCoverage(proc.coverage, PROCESS_KINDS);
  for (const l of coverageLines) say(l);
  const complete = proc.coverage.missing.length === 0;

  const learned = mergeLearned(previous.learned, round);
  const fresh = newCalls(previous.learned, round, perRole);
  const text = renderLearnedPolicy({
    learned, base, baseLabel, arch, server: serverVersion(postgres), workload: opts.workload, perRole,
    allContexts: opts.allContexts ?? false, rounds: previous.rounds + 1, roundStart, roundEnd: new Date().toISOString(),
    ...(opts.merge !== undefined && existsSync(opts.merge) ? { merged: resolve(opts.merge) } : {}),
    ...(previous.since !== undefined ? { since: previous.since } : {}),
    floor, coverage: coverageLines, analysis: analyzed.analysis, denyPerContext: deny,
    ran: [...new Set([...proc.coverage.ran, ...proc.coverage.recorded])],
  });
  writeOutput(opts.out, text);
  say(`recorded ${plural(calls, "call")} of ${plural(names.size, "distinct syscall")} in ${plural(round.size, "context")}; wrote ${opts.out}`);
  // One line per context: what this round added there.
  const freshBy = new Map<string, string[]>();
  for (const n of fresh) freshBy.set(n.context, [...(freshBy.get(n.context) ?? []), n.syscall]);
  for (const [context, calls] of [...freshBy].sort(([a], [b]) => a.localeCompare(b))) say(`  new in ${context}: ${calls.join(", ")}`);
  const summary = `${plural(fresh.length, "new syscall")} this round` + (complete ? "" : `; INCOMPLETE (not seen: ${proc.coverage.missing.join("; ")})`);
  return {
    out: opts.out, newCalls: fresh, summary, calls, learned, runs: proc.runs, coverage: proc.coverage, complete,
    ...(proc.workloadStatus ? { workloadStatus: proc.workloadStatus } : {}),
  };
}
