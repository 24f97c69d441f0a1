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

/**
 * The kernel's verdict for one decided leaf. `execveToSupervisor` is set when execve must go to
 * the supervisor: whenever the policy does not allow it outright, and whenever anything else
 * goes there (the launcher's exec of postgres is then the moment the supervisor takes over the
 * listener, so it must wait for the supervisor).
 */
export function kernelRet(leaf: Leaf, isExecve: boolean, execveToSupervisor: boolean): number {
  const kind = leaf.action.kind;
  if (isExecve && execveToSupervisor) return SECCOMP_RET_USER_NOTIF;
  if (kind === "error" || kind === "log") return SECCOMP_RET_USER_NOTIF;
  return actionRet(leaf.action);
}

export function kernelPrograms(policy: Policy, arch: Arch, context: ContextSpec): KernelPrograms {
  const cd = contextDecisions(policy, arch, context);
  const execveNr = syscallNumber(arch, "execve");
  let othersRouted = false;
  let execveAllowed = true;
  // A first pass finds out whether anything goes to the supervisor besides execve.
  compileDecisions(cd, {
    retFor: (leaf, nr) => {
      if (nr === execveNr) execveAllowed &&= leaf.action.kind === "allow";
      else if (kernelRet(leaf, false, false) === SECCOMP_RET_USER_NOTIF) othersRouted = true;
      return 0;
    },
  });
  const execveToSupervisor = othersRouted || !execveAllowed;
  const installed = compileDecisions(cd, { retFor: (leaf, nr) => kernelRet(leaf, nr === execveNr, execveToSupervisor) });
  return { arch, context, installed, decisions: compileDecisions(cd), usesSupervisor: execveToSupervisor };
}
