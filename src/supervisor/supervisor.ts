// How the supervisor answers a notification. The kernel hands it calls that the installed
// program sent to user space (src/compile/compose.ts); the answer is what the policy's own program says
// for exactly that seccomp_data, so the supervisor can never be more permissive than the
// policy. Decisions use only the syscall number, scalar arguments and the pid: never memory
// the caller could change after the check.

import type { CompiledFilter } from "../bpf/emulator.js";
import { describeSeccompRet, retData, seccompActionOf, type SeccompData } from "../seccomp/index.js";
import { maskHas, parseProcStatus } from "../host/proc.js";
import { SUPERVISOR_TERMINATE_BIT } from "../compile/compose.js";

export type Verdict =
  /** Let the call run (the policy allows or logs it, or it is the launcher's exec of postgres). */
  | { kind: "continue"; action: "allow" | "log" | "launch" }
  /** Fail the call with this errno. */
  | { kind: "error"; errno: number; action: "error" }
  /** Fail the call with this errno, then end the session with SIGTERM (pg_terminate_backend's signal). */
  | { kind: "terminate"; errno: number; action: "terminate" }
  /** Kill the process (the policy kills, or traps, a call that had to come here: execve). */
  | { kind: "kill"; action: "kill" | "trap" };

export interface LaunchGate {
  /** True until the launcher's own execve of postgres has been let through. */
  pending: boolean;
  stagePid: number;
  execveNr: number;
}

export function decide(decisions: CompiledFilter, data: SeccompData, pid: number, gate: LaunchGate): Verdict {
  if (gate.pending && pid === gate.stagePid && data.nr === gate.execveNr) {
    gate.pending = false;
    return { kind: "continue", action: "launch" };
  }
  const ret = decisions(data).ret;
  switch (seccompActionOf(ret)?.name) {
    case "ALLOW":
      return { kind: "continue", action: "allow" };
    case "LOG":
      return { kind: "continue", action: "log" };
    case "ERRNO": {
      const data = retData(ret);
      if (data & SUPERVISOR_TERMINATE_BIT) return { kind: "terminate", errno: data & ~SUPERVISOR_TERMINATE_BIT, action: "terminate" };
      return { kind: "error", errno: data, action: "error" };
    }
    case "TRAP":
      return { kind: "kill", action: "trap" };
    case "KILL_PROCESS":
    case "KILL_THREAD":
      return { kind: "kill", action: "kill" };
    default:
      // Anything else the policy program cannot produce; fail closed.
      throw new Error(`the policy program returned ${describeSeccompRet(ret)}, which the supervisor does not handle`);
  }
}

const SIGSYS = 31;

/**
 * SIGSYS (as a seccomp kill gives) when it is sure to kill: the process has one thread (which
 * is parked in the notified call and cannot change its signal handling meanwhile) and SIGSYS is
 * neither caught, blocked nor ignored. Otherwise SIGKILL, which nothing can stop.
 */
export function killSignalFor(procStatus: string): "SIGSYS" | "SIGKILL" {
  const st = parseProcStatus(procStatus);
  if (st.threads !== 1) return "SIGKILL";
  // An unknown mask counts as set: SIGKILL.
  if (maskHas(st.sigCgt, SIGSYS) || maskHas(st.sigBlk, SIGSYS) || maskHas(st.sigIgn, SIGSYS)) return "SIGKILL";
  return "SIGSYS";
}

