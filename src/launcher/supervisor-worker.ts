// The supervisor's loop, on a worker thread so that a slow log write or the launcher's own
// event loop never delays an answer. Receives notifications, answers them (decide()), and
// posts one event per call that was not simply allowed.

import { parentPort, workerData } from "node:worker_threads";
import { readFileSync } from "node:fs";
import { compileFilter } from "../bpf/emulator.js";
import { decodeProgram } from "../bpf/insn.js";
import { KernelError, notifIdValid, notifRecv, notifSend, pollListener, SECCOMP_USER_NOTIF_FLAG_CONTINUE } from "../kernel/index.js";
import { decide, killSignalFor, type LaunchGate, type ViolationEvent } from "./supervisor.js";
import { syscallName, type Arch } from "../syscalls/index.js";

export interface SupervisorWorkerData {
  listenerFd: number;
  /** Base64 of the policy's own program. */
  decisions: string;
  stagePid: number;
  execveNr: number;
  arch: Arch;
  /** Int32Array over a SharedArrayBuffer: [0] set to 1 asks the loop to stop. */
  stop: SharedArrayBuffer;
}

const data = workerData as SupervisorWorkerData;
const decisions = compileFilter(decodeProgram(Buffer.from(data.decisions, "base64")));
const gate: LaunchGate = { pending: true, stagePid: data.stagePid, execveNr: data.execveNr };
const stop = new Int32Array(data.stop);
const ENOSYS = 38;

function readProc(pid: number, file: string): string {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return "";
  }
}

function title(pid: number): string {
  return readProc(pid, "cmdline").replace(/\0+$/, "").replace(/\0/g, " ");
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
    const verdict = decide(decisions, n.data, n.pid, gate);
    const quiet = verdict.kind === "continue" && verdict.action === "allow";
    const proc = quiet ? "" : title(n.pid);
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
      action: verdict.action,
      ...(verdict.kind === "error" ? { errno: verdict.errno } : {}),
      ...(signal ? { signal } : {}),
    };
    parentPort!.postMessage(event);
  }
}

loop();
