// What `run` installs in the kernel, and what the supervisor decides with.
//
// One program is installed in the postmaster and inherited by every process of the server.
// A call is decided in the kernel when every process context decides it the same way and the
// action is allow, kill or trap (an unconditional ALLOW is cached by the kernel and costs
// nothing). It returns SECCOMP_RET_USER_NOTIF, and the supervisor decides it for the calling
// process's context, when contexts differ on it (the postmaster may listen, sessions may not),
// or when the policy answers it with `error` or `log` (so that the supervisor can write it to
// the DBA's log, and name it when the server fails to start). `execve` goes to the supervisor
// too (unless it is allowed everywhere and nothing else needs the supervisor): the launcher's
// own exec of postgres must work under a policy that denies exec to the server, and the
// supervisor lets through exactly that one call. Denied calls are rare in a running server, so
// the round trip is paid almost never; a policy whose default is `log` (learning) pays it on
// every call it does not allow, by design.

import { actionRet, compileDecisions } from "../bpf/compile.js";
import { type Insn } from "../bpf/insn.js";
import { SECCOMP_RET_USER_NOTIF } from "../seccomp/index.js";
import { contextDecisions, decisionFor, policyContexts, sameDecision, type ContextDecisions, type ContextSpec, type Decision, type Leaf } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { addRunRefusals, RUN_REFUSAL_SOURCE } from "../policy/refusals.js";
import { maxSyscallNumber, syscallName, syscallNumber, type Arch } from "../syscalls/index.js";

/**
 * set_client_filter()'s knock: the SQL function seeks a file to this offset, and the installed
 * program hands exactly that lseek to the supervisor, which then narrows the calling backend.
 * Any other lseek is decided as before (the check reads one more argument on lseek's path).
 */
export const CLIENT_FILTER_KNOCK = 0x5ecc0f17e1370000n; // 64 KiB-aligned: glibc seeks to block boundaries

export interface KernelPrograms {
  arch: Arch;
  /** The program installed in the kernel. */
  installed: Insn[];
  /** True when some call goes to the supervisor (a listener is needed). */
  usesSupervisor: boolean;
  /** Syscall numbers whose decision depends on the process's context. */
  perProcess: number[];
  /** The policy's own program for the context asked for (global unless given). */
  decisions: Insn[];
}

/** The policy's own program for one context: what the supervisor runs for a notification. */
export function decisionProgram(policy: Policy, arch: Arch, context: ContextSpec): Insn[] {
  const cd = contextDecisions(policy, arch, context);
  addRunRefusals(cd);
  return compileDecisions(cd);
}

/** Leaves the launcher adds that the kernel decides, whatever the policy routes (policy/refusals.ts). */
export const STRUCTURAL_SOURCE = RUN_REFUSAL_SOURCE;
/** Leaves that send a call to the supervisor only so that it can classify the caller first. */
export const EXEC_GATE_SOURCE = "exec-gate";

const PROT_EXEC = 4n;

function routedToSupervisor(leaf: Leaf): boolean {
  if (leaf.source === STRUCTURAL_SOURCE) return false;
  // A quiet denial (a hardening preset's clone3 ENOSYS, which glibc meets on every thread and
  // spawn) is decided in the kernel: it is the designed path, not a violation to log.
  return (leaf.action.kind === "error" && !leaf.quiet) || leaf.action.kind === "log";
}

function replaceLeaves(d: Decision, f: (l: Leaf) => Leaf): Decision {
  return d.kind === "leaf" ? f(d) : { ...d, then: replaceLeaves(d.then, f), else: replaceLeaves(d.else, f) };
}

/**
 * Rules `run` adds to every installed program because process classification depends on them
 * (docs/design.md, "Classification"):
 * - clone with CLONE_PARENT fails (EPERM) in the kernel: it is the one way for a process other
 *   than the postmaster to create a child of the postmaster, which would then be classified
 *   afresh. PostgreSQL never uses it.
 * - clone3 fails with ENOSYS: its flags (CLONE_PARENT among them) are in memory the filter cannot
 *   read; glibc falls back to clone.
 * - With per-process contexts: mmap/mprotect/pkey_mprotect asking for PROT_EXEC go to the
 *   supervisor, which classifies the caller (if it has not yet) before answering, so no new
 *   executable code (a LOADed library, session_preload_libraries) enters a process whose context
 *   has not been pinned from facts gathered before that code could run.
 */
function setDecision(cd: ContextDecisions, arch: Arch, name: string, make: (current: Decision) => Decision): void {
  const nr = syscallNumber(arch, name);
  if (nr === undefined) return;
  cd.named.set(nr, { name, decision: make(decisionFor(cd, nr)) });
}

/** The exec gate, in the installed program only (the supervisor answers it with the policy's own decision). */
function addExecGate(cd: ContextDecisions, arch: Arch): void {
  for (const [name, arg] of [["mmap", 2], ["mprotect", 2], ["pkey_mprotect", 2]] as const) {
    setDecision(cd, arch, name, (current) => ({
      kind: "branch",
      conds: [{ arg, op: "masked_eq", mask: PROT_EXEC, value: PROT_EXEC, width: 32 }],
      then: replaceLeaves(current, (l) => (l.action.kind === "allow" || l.action.kind === "log" ? { kind: "leaf", action: { kind: "log" }, source: EXEC_GATE_SOURCE } : l)),
      else: current,
    } as Decision));
  }
}

export function kernelPrograms(policy: Policy, arch: Arch, context: ContextSpec = { context: "global" }): KernelPrograms {
  const all = policyContexts(policy).map((c) => contextDecisions(policy, arch, c));
  const base = all[0]!; // the global context: where every context agrees, it agrees with this
  const perProcess = new Set<number>();
  for (let nr = 0; nr <= maxSyscallNumber(arch); nr++) {
    const d0 = decisionFor(base, nr);
    if (all.some((cd) => !sameDecision(decisionFor(cd, nr), d0, true))) perProcess.add(nr);
  }
  const unknownDiffers = all.some((cd) => !sameDecision(cd.unknownDecision, base.unknownDecision, true));
  const execveNr = syscallNumber(arch, "execve");
  // A refusal is decided in the kernel unless contexts differ on the call (then the supervisor,
  // whose programs carry the same refusals, answers for the caller's context).
  const notify = (leaf: Leaf, nr: number) =>
    perProcess.has(nr) || (unknownDiffers && syscallName(arch, nr) === undefined) || routedToSupervisor(leaf);

  // Does anything besides execve go to the supervisor? Then execve must too (see above).
  let othersRouted = false;
  let execveEverywhereAllowed = true;
  compileDecisions(base, {
    retFor: (leaf, nr) => {
      if (nr === execveNr) execveEverywhereAllowed &&= !perProcess.has(nr) && leaf.action.kind === "allow";
      else if (notify(leaf, nr)) othersRouted = true;
      return 0;
    },
  });
  const execveToSupervisor = othersRouted || !execveEverywhereAllowed;
  addRunRefusals(base);
  if (perProcess.size > 0 || unknownDiffers) addExecGate(base, arch);
  // The knock for set_client_filter (see CLIENT_FILTER_KNOCK).
  const lseekNr = syscallNumber(arch, "lseek");
  if (lseekNr !== undefined) {
    const current = decisionFor(base, lseekNr);
    const knock: Leaf = { kind: "leaf", action: { kind: "log" }, source: "set_client_filter" };
    base.named.set(lseekNr, {
      name: "lseek",
      decision: { kind: "branch", conds: [{ arg: 1, op: "eq", value: CLIENT_FILTER_KNOCK, width: 64 }], then: knock, else: current },
    });
  }
  const installed = compileDecisions(base, {
    retFor: (leaf, nr) => (notify(leaf, nr) || (nr === execveNr && execveToSupervisor) ? SECCOMP_RET_USER_NOTIF : actionRet(leaf.action)),
  });
  return { arch, installed, usesSupervisor: execveToSupervisor, perProcess: [...perProcess], decisions: decisionProgram(policy, arch, context) };
}

/**
 * Whether classifying a process with a client connection needs the server's row: when the
 * policy tells sessions apart by role or database, treats walsenders unlike sessions, or logs
 * sessions' calls (a log line, learning above all, should say whose call it was). Otherwise the
 * kernel's word (a client connection) decides alone, and no query is made.
 */
export function clientsNeedServerRow(policy: Policy, arch: Arch): boolean {
  if (policy.roles.size > 0 || policy.databases.size > 0) return true;
  const session = contextDecisions(policy, arch, { context: "session" });
  const walsender = contextDecisions(policy, arch, { context: "walsender" });
  if (!sameDecision(session.unknownDecision, walsender.unknownDecision, true)) return true;
  const logs = (d: Decision): boolean => (d.kind === "leaf" ? d.action.kind === "log" : logs(d.then) || logs(d.else));
  if (logs(session.defaultDecision) || logs(session.unknownDecision)) return true;
  for (let nr = 0; nr <= maxSyscallNumber(arch); nr++) {
    const d = decisionFor(session, nr);
    if (logs(d) || !sameDecision(d, decisionFor(walsender, nr), true)) return true;
  }
  return false;
}
