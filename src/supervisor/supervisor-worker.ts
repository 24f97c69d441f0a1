// The supervisor's loop, on a worker thread so that the launcher's own event loop (the log, the
// monitoring connection, set_client_filter) never delays an answer. It receives notifications,
// lets SupervisorCore decide them, and talks to the main thread only through messages it polls
// without blocking (receiveMessageOnPort): classification requests and statement lookups go
// out, their answers come back, and held calls wait meanwhile while others are answered.

import { TIME_SCALE } from "./time-scale.js";
import { programContextFor } from "../classify/classify.js";
import { parentPort, receiveMessageOnPort, workerData, type MessagePort } from "node:worker_threads";
import { writeSync } from "node:fs";
import { compileFilter, type CompiledFilter } from "../bpf/emulator.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { CLIENT_FILTER_KNOCK, PROT_EXEC, supervisorProgram } from "../compile/compose.js";
import { KernelError, notifIdValid, notifRecv, notifSend, pollListener, SECCOMP_USER_NOTIF_FLAG_CONTINUE } from "../kernel/index.js";
import type { LaunchGate } from "./supervisor.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { SupervisorCore, type Classification } from "./supervisor-core.js";
import { readParentAndStart, readTitle, spawnsShell } from "../host/proc.js";
import { readOwnBackendType } from "../host/backend-identity.js";
import { backendTypeAddress, type BackendTypeLayout } from "./backend-identity.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";
import { PROC, readProcStatus, type ProcStatus } from "../host/proc.js";
import { descriptorIdentity, type FileIdentity } from "../host/server-code.js";

export interface SupervisorWorkerData {
  listenerFd: number;
  /** The policy (structured-cloned): each context's program is compiled from it on first use. */
  policy: Policy;
  stagePid: number;
  execveNr: number;
  arch: Arch;
  /** Int32Array over a SharedArrayBuffer: [0] set to 1 asks the loop to stop. */
  stop: SharedArrayBuffer;
  /**
   * set_client_filter's hand-over (Int32Array): [0] pid being narrowed now (its seccomp call is
   * let through), [1] pid whose knock is answered next, [2] with this errno (0: continue).
   */
  clientFilter: SharedArrayBuffer;
  /** Int32Array: pids whose injection's seccomp call runs now (supervision.ts, stepSlot); 0 is a free slot. */
  injecting: SharedArrayBuffer;
  /** Int32Array: [0] the worker's heartbeat (tenths of a second since heartbeatOrigin, plus one; 0 until its loop starts), [1] the main thread's. */
  heartbeat: SharedArrayBuffer;
  /** Date.now() both threads count heartbeats from. */
  heartbeatOrigin: number;
  /** The main thread's end of the classification channel. */
  port: MessagePort;
  /**
   * The exec gate's exception (src/host/server-code.ts): the calls routed for the gate alone,
   * the server's own modules by mount id and inode (fdinfo), and where each process's own
   * MyBackendType is (none: no exception, every such mapping classifies first).
   */
  serverCode: { gateOnly: number[]; files: FileIdentity[]; backendType?: BackendTypeLayout };
}

/** Messages the worker sends on `port` and receives back. */
export type WorkerRequest = { type: "classify"; pid: number; start: string; entersCode: boolean } | { type: "statement"; pid: number };
export type WorkerAnswer =
  | { type: "classified"; pid: number; start: string; classification: Classification }
  | { type: "statement"; pid: number; query?: string; role?: string; database?: string };
/** Messages the worker posts to parentPort. */
export type WorkerEvent =
  | ViolationEvent
  | { type: "client-filter"; pid: number; id: string }
  | { type: "note"; line: string }
  /** At the end of its loop: notifications received (PG_SECCOMP_STATS). */
  | { type: "stats"; notifications: number; serverCodeMappings: number }
  | { type: "program"; pid: number; start: string; source: number; ctx: ContextSpec; ppid?: number };

const data = workerData as SupervisorWorkerData;
const port = data.port;
const stop = new Int32Array(data.stop);
const clientFilter = new Int32Array(data.clientFilter);
const injecting = new Int32Array(data.injecting);
/** Is `tid` a process's main thread running its injection's seccomp call now? */
function injectingNow(tid: number): boolean {
  for (let i = 0; i < injecting.length; i++) if (Atomics.load(injecting, i) === tid) return true;
  return false;
}
const heartbeat = new Int32Array(data.heartbeat);
// Only a policy with set_client_filter = on has the knock compiled in; otherwise an lseek that
// reaches us (routed for the policy's sake) is an lseek like any other.
const lseekNr = data.policy.clientFilter ? syscallNumber(data.arch, "lseek") : undefined;
const seccompNr = syscallNumber(data.arch, "seccomp");
const tenths = () => Math.floor((Date.now() - data.heartbeatOrigin) / 100);

const programs = new Map<string, CompiledFilter>();
function decisionsFor(ctx: ContextSpec): CompiledFilter {
  const key = contextKey(ctx);
  let f = programs.get(key);
  if (!f) {
    f = compileFilter(supervisorProgram(data.policy, data.arch, ctx));
    programs.set(key, f);
  }
  return f;
}

function answer(id: bigint, resp: { flags?: number; error?: number }): void {
  try {
    notifSend(data.listenerFd, { id, ...resp });
  } catch (e) {
    if (!(e instanceof KernelError && e.code === "ENOENT")) throw e;
  }
}

/** The last /proc/TID/status threadGroup() read: the notification at hand's, read once for both questions. */
let lastStatus: { tid: number; status: ProcStatus } | undefined;
const mmapNr = syscallNumber(data.arch, "mmap");
const serverCodeFiles = new Set(data.serverCode.files.map((f) => `${f.mnt}:${f.ino}`));
/** Where every server process's own MyBackendType is, once the postmaster runs the executable. */
let backendTypeAt: bigint | undefined;
const PROT_WRITE = 2n;
const MAP_ANONYMOUS = 0x20n; // the same on x86_64 and aarch64
/**
 * mmap(addr, len, prot, flags, fd, off) of the server's own code: executable and not writable
 * (a writable executable copy would be a place to write code to), of a file (not anonymous),
 * whose descriptor is one of serverCodeFiles, by a process with one thread. Its descriptor is
 * read from /proc/PID/fdinfo while the call is held: with one thread nothing but the call itself uses
 * the process's descriptor table (PostgreSQL never shares one with CLONE_FILES), so the file the
 * kernel maps once the call runs is the one read here.
 */
function serverCodeMapping(pid: number, d: { nr: number; args: readonly bigint[] }): boolean {
  if (serverCodeFiles.size === 0 || d.nr !== mmapNr) return false;
  const prot = d.args[2] ?? 0n;
  const flags = d.args[3] ?? 0n;
  const fd = Number(BigInt.asIntN(32, d.args[4] ?? -1n));
  if ((prot & PROT_EXEC) === 0n || (prot & PROT_WRITE) !== 0n || (flags & MAP_ANONYMOUS) !== 0n || fd < 0) return false;
  // The status threadGroup() read for this notification a moment ago, when it was this thread's
  // (its Threads: is the process's); else read now.
  const threads = lastStatus?.tid === pid ? lastStatus.status.threads : readProcStatus(pid)?.threads;
  if (threads !== 1) return false;
  // A client backend's only: a background worker's library and entry point are its registrant's
  // choice, and with plpgsql.so as the library any libc function is an entry point (no
  // PG_FUNCTION_INFO_V1 record is asked for), so its mapping classifies it first
  // (attacks/server-code-bgworker.test.ts). MyBackendType is still the postmaster's word: nothing
  // but the server's code has run in an unclassified process.
  const layout = data.serverCode.backendType;
  if (!layout) return false;
  backendTypeAt ??= backendTypeAddress(layout);
  if (backendTypeAt === undefined || readOwnBackendType(pid, backendTypeAt, layout.types) !== "client backend") return false;
  const id = descriptorIdentity(pid, fd);
  return id !== undefined && serverCodeFiles.has(`${id.mnt}:${id.ino}`);
}

const gate: LaunchGate = { pending: true, stagePid: data.stagePid, execveNr: data.execveNr };
const core = new SupervisorCore(data.stagePid, decisionsFor, gate, data.arch, {
  now: () => Date.now(),
  threadGroup: (tid) => {
    const status = readProcStatus(tid);
    lastStatus = status ? { tid, status } : undefined;
    return status?.tgid ?? undefined;
  },
  stat: (pid) => readParentAndStart(pid),
  status: (pid) => PROC.status(pid) ?? "",
  title: (pid) => readTitle(pid),
  idValid: (id) => notifIdValid(data.listenerFd, id),
  respond: (id, a) => answer(id, "continue" in a ? { flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE } : { error: a.errno }),
  kill: (pid, sig) => {
    try {
      process.kill(pid, sig);
    } catch {
      /* gone */
    }
  },
  spawnsShell: (pid, d) => spawnsShell(pid, d.args[0] ?? 0n, d.args[1] ?? 0n),
  requestClassification: (pid, start, entersCode) => port.postMessage({ type: "classify", pid, start, entersCode } satisfies WorkerRequest),
  requestStatement: (pid) => port.postMessage({ type: "statement", pid } satisfies WorkerRequest),
  emit: (e) => parentPort!.postMessage(e),
  note: (line) => parentPort!.postMessage({ type: "note", line }),
  serverCodeMapping,
  // Its parent now, while its exec waits (the program may be gone when the main thread reads this).
  program: (pid, start, source, ctx) => {
    const ppid = readParentAndStart(pid)?.ppid;
    parentPort!.postMessage({ type: "program", pid, start, source, ctx, ...(ppid !== undefined ? { ppid } : {}) } satisfies WorkerEvent);
  },
});
// Programs the server runs get their parent's program lists (program_syscall_*.<parent>).
if (data.policy.programs) core.programContext = (parent) => programContextFor(data.policy, parent);
core.gateOnly = new Set(data.serverCode.gateOnly);


let mainStallReported = false;
function drainAnswers(): void {
  for (let m = receiveMessageOnPort(port); m; m = receiveMessageOnPort(port)) {
    const a = m.message as WorkerAnswer;
    if (a.type === "classified") core.onClassified(a.pid, a.start, a.classification);
    else if (a.type === "statement") core.onStatement(a.pid, a.query, a.role, a.database);
  }
  // The main thread writes the log, forwards signals and classifies: if it has been stuck for
  // 10 s the server must not go on unsupervised in part. Stop it (SIGQUIT: immediate shutdown).
  const mainBeat = Atomics.load(heartbeat, 1);
  if (!mainStallReported && mainBeat > 0 && tenths() - mainBeat > 100 * TIME_SCALE) {
    mainStallReported = true;
    writeSync(2, `pg_seccomp: error: the launcher's main thread has not run for ${10 * TIME_SCALE} s; stopping the server (fail closed)\n`);
    try {
      process.kill(data.stagePid, "SIGQUIT");
    } catch {
      /* gone */
    }
  }
}

function loop(): void {
  while (Atomics.load(stop, 0) === 0) {
    Atomics.store(heartbeat, 0, tenths() + 1); // never 0: 0 means "not started yet"
    const state = pollListener(data.listenerFd, core.heldCount > 0 ? 5 : 100);
    drainAnswers();
    core.tick();
    if (state === "hangup") return; // every filtered process is gone
    if (state !== "pending") continue;
    let n;
    try {
      n = notifRecv(data.listenerFd);
      notifications++;
    } catch (e) {
      if (e instanceof KernelError && (e.code === "ENOENT" || e.code === "EINTR")) continue; // the caller died first
      throw e;
    }
    // set_client_filter: the knock goes to the launcher's main thread, which narrows the caller
    // (interrupting this call, which then restarts) and leaves the answer for the restarted knock.
    if (lseekNr !== undefined && n.data.nr === lseekNr && n.data.args[1] === CLIENT_FILTER_KNOCK) {
      if (Atomics.load(clientFilter, 1) === n.pid) {
        const errno = Atomics.load(clientFilter, 2);
        Atomics.store(clientFilter, 1, 0);
        answer(n.id, errno === 0 ? { flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE } : { error: errno });
      } else {
        parentPort!.postMessage({ type: "client-filter", pid: n.pid, id: n.id.toString() });
      }
      continue;
    }
    // The call the launcher's main thread makes a stopped process run (set_client_filter's, or
    // the injection of its context's denials): only its main thread runs, one instruction.
    if (n.data.nr === seccompNr && (Atomics.load(clientFilter, 0) === n.pid || injectingNow(n.pid))) {
      answer(n.id, { flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE });
      continue;
    }
    core.onNotification(n);
  }
}
let notifications = 0;

try {
  loop();
} finally {
  // The server stopped or the launcher asked the loop to end: the summaries still held go out.
  core.flushSummaries();
  parentPort!.postMessage({ type: "stats", notifications, serverCodeMappings: core.serverCodeMappings } satisfies WorkerEvent);
}
