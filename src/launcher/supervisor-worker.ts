// The supervisor's loop, on a worker thread so that a slow log write or the launcher's own
// event loop never delays an answer. Receives notifications, answers them (decide()), and
// posts one event per call that was not simply allowed.

import { parentPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { compileFilter, type CompiledFilter } from "../bpf/emulator.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { Classifier } from "./classify.js";
import { CLIENT_FILTER_KNOCK, decisionProgram } from "./program.js";
import { runningStatement, type StatementLookup } from "./violation-log.js";
import { KernelError, notifIdValid, notifRecv, notifSend, pollListener, SECCOMP_USER_NOTIF_FLAG_CONTINUE } from "../kernel/index.js";
import { decide, killSignalFor, type LaunchGate, type ViolationEvent } from "./supervisor.js";
import { syscallName, syscallNumber, type Arch } from "../syscalls/index.js";

export interface SupervisorWorkerData {
  listenerFd: number;
  /** The policy (structured-cloned): each context's program is compiled from it on first use. */
  policy: Policy;
  stagePid: number;
  /** How to look up a session's running statement, when psql and the data directory are known. */
  statements?: StatementLookup;
  execveNr: number;
  arch: Arch;
  /** Int32Array over a SharedArrayBuffer: [0] set to 1 asks the loop to stop. */
  stop: SharedArrayBuffer;
  /**
   * set_client_filter's hand-over (Int32Array): [0] pid being narrowed now (its seccomp call is
   * let through), [1] pid whose knock is answered next, [2] with this errno (0: continue).
   */
  clientFilter: SharedArrayBuffer;
}

const data = workerData as SupervisorWorkerData;
function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
}

const programs = new Map<string, CompiledFilter>();
function decisionsFor(ctx: ContextSpec): CompiledFilter {
  const key = contextKey(ctx);
  let f = programs.get(key);
  if (!f) {
    f = compileFilter(decisionProgram(data.policy, data.arch, ctx));
    programs.set(key, f);
  }
  return f;
}
const classifier = new Classifier(data.stagePid, {
  cmdline: (pid) => readProc(pid, "cmdline") || undefined,
  stat: (pid) => readProc(pid, "stat") || undefined,
});
const gate: LaunchGate = { pending: true, stagePid: data.stagePid, execveNr: data.execveNr };
const stop = new Int32Array(data.stop);
const clientFilter = new Int32Array(data.clientFilter);
const lseekNr = syscallNumber(data.arch, "lseek");
const seccompNr = syscallNumber(data.arch, "seccomp");
const ENOSYS = 38;

function readTitle(pid: number): string {
  return readProc(pid, "cmdline").replace(/\0+$/, "").replace(/\0/g, " ");
}

// A logged call (learning) lets the process go on: its title as read in the last second is
// good enough, and saves a /proc read per call. Denials always read it afresh.
const titles = new Map<number, { title: string; at: number }>();
function title(pid: number, fresh: boolean): string {
  const now = Date.now();
  const hit = titles.get(pid);
  if (!fresh && hit && now - hit.at < 1000) return hit.title;
  const t = readTitle(pid);
  if (titles.size > 4096) titles.clear();
  titles.set(pid, { title: t, at: now });
  return t;
}

// Looking a statement up costs a psql connection; at most a few per second, so that a process
// hammering a denied call cannot slow everyone else's notifications down.
let lookups: number[] = [];
function statementOf(backendPid: number): string | undefined {
  if (!data.statements) return undefined;
  const now = Date.now();
  lookups = lookups.filter((t) => now - t < 1000);
  if (lookups.length >= 5) return undefined;
  lookups.push(now);
  return runningStatement(data.statements, backendPid);
}

function answer(id: bigint, resp: { flags?: number; error?: number }): void {
  try {
    notifSend(data.listenerFd, { id, ...resp });
  } catch (e) {
    if (!(e instanceof KernelError && e.code === "ENOENT")) throw e;
  }
}

function loop(): void {
  while (Atomics.load(stop, 0) === 0) {
    const state = pollListener(data.listenerFd, 250);
    if (state === "hangup") return; // every filtered process is gone
    if (state !== "pending") continue;
    let n;
    try {
      n = notifRecv(data.listenerFd);
    } catch (e) {
      if (e instanceof KernelError && (e.code === "ENOENT" || e.code === "EINTR")) continue; // the caller died first
      throw e;
    }
    // set_client_filter: the knock goes to the launcher's main thread, which narrows the caller
    // (interrupting this call, which then restarts) and leaves the answer for the restarted knock.
    if (n.data.nr === lseekNr && n.data.args[1] === CLIENT_FILTER_KNOCK) {
      if (Atomics.load(clientFilter, 1) === n.pid) {
        const errno = Atomics.load(clientFilter, 2);
        Atomics.store(clientFilter, 1, 0);
        answer(n.id, errno === 0 ? { flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE } : { error: errno });
      } else {
        parentPort!.postMessage({ type: "client-filter", pid: n.pid, id: n.id.toString() });
      }
      continue;
    }
    if (n.data.nr === seccompNr && Atomics.load(clientFilter, 0) === n.pid) {
      answer(n.id, { flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE });
      continue;
    }
    const { ctx, source } = classifier.classifyWithSource(n.pid);
    const verdict = decide(decisionsFor(ctx), n.data, n.pid, gate);
    const quiet = verdict.kind === "continue" && verdict.action === "allow";
    const proc = quiet ? "" : title(n.pid, verdict.kind !== "continue");
    const query = verdict.kind !== "continue" && (ctx.context === "session" || ctx.context === "parallel_worker") ? statementOf(source) : undefined;
    const status = verdict.kind === "kill" ? readProc(n.pid, "status") : "";
    // What we read from /proc is about this call's process only if the call is still pending.
    if (!notifIdValid(data.listenerFd, n.id)) continue;
    let signal: string | undefined;
    try {
      if (verdict.kind === "continue") {
        notifSend(data.listenerFd, { id: n.id, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE });
      } else if (verdict.kind === "error") {
        notifSend(data.listenerFd, { id: n.id, error: verdict.errno });
      } else {
        signal = killSignalFor(status);
        process.kill(n.pid, signal);
        notifSend(data.listenerFd, { id: n.id, error: ENOSYS });
      }
    } catch (e) {
      if (!(e instanceof KernelError && e.code === "ENOENT") && (e as NodeJS.ErrnoException).code !== "ESRCH") throw e;
    }
    if (quiet) continue;
    const event: ViolationEvent = {
      time: new Date().toISOString(),
      pid: n.pid,
      process: proc,
      syscall: syscallName(data.arch, n.data.nr) ?? `#${n.data.nr}`,
      nr: n.data.nr,
      args: n.data.args.map((a) => "0x" + a.toString(16)),
      context: ctx.context,
      ...(source !== n.pid ? { decidedBy: source } : {}),
      ...(ctx.role !== undefined ? { role: ctx.role } : {}),
      ...(ctx.database !== undefined ? { database: ctx.database } : {}),
      ...(query !== undefined ? { query } : {}),
      action: verdict.action,
      ...(verdict.kind === "error" ? { errno: verdict.errno } : {}),
      ...(signal ? { signal } : {}),
    };
    parentPort!.postMessage(event);
  }
}

loop();
