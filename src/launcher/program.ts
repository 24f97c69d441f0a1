// What `run` installs in the kernel, and how the supervisor decides what the kernel hands it.
//
// Allowed calls, kills and traps are decided in the kernel (fast path: an unconditional ALLOW
// is cached by the kernel and costs nothing). Calls the policy answers with `error` or `log`
// return SECCOMP_RET_USER_NOTIF instead, so that the supervisor can write them to the DBA's log
// (the review's point: auditd is not the DBA's) and name them when the server fails to start;
// the supervisor then answers exactly as the policy says. `execve` always goes to the
// supervisor unless the policy allows it outright: the launcher's own exec of postgres must
// work even under a policy that denies exec to the server, and the supervisor lets through
// exactly that one call. Denied calls are rare in a running server, so the extra round trip
// is paid almost never; a policy whose default is `log` (learning) pays it on every call it
// does not allow, by design.

import { actionRet, compileDecisions } from "../bpf/compile.js";
import { SECCOMP_RET_USER_NOTIF, type Insn } from "../bpf/insn.js";
import { contextDecisions, type ContextSpec, type Leaf } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";

export interface KernelPrograms {
  arch: Arch;
  context: ContextSpec;
  /** The program installed in the kernel. */
  installed: Insn[];
  /** The policy's own program: what the supervisor runs to answer a notification. */
  decisions: Insn[];
  /** True when some call goes to the supervisor (a listener is needed). */
  usesSupervisor: boolean;
}

export function kernelRet(leaf: Leaf, nr: number, execveNr: number | undefined): number {
  const kind = leaf.action.kind;
  if (nr === execveNr && kind !== "allow") return SECCOMP_RET_USER_NOTIF;
  if (kind === "error" || kind === "log") return SECCOMP_RET_USER_NOTIF;
  return actionRet(leaf.action);
}

export function kernelPrograms(policy: Policy, arch: Arch, context: ContextSpec): KernelPrograms {
  const cd = contextDecisions(policy, arch, context);
  const execveNr = syscallNumber(arch, "execve");
  let usesSupervisor = false;
  const installed = compileDecisions(cd, {
    retFor: (leaf, nr) => {
      const ret = kernelRet(leaf, nr, execveNr);
      if (ret === SECCOMP_RET_USER_NOTIF) usesSupervisor = true;
      return ret;
    },
  });
  return { arch, context, installed, decisions: compileDecisions(cd), usesSupervisor };
}
