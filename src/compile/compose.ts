// What `run` installs in the kernel, and how its supervisor answers each process context: one
// pure function, compose(), whose answer launcher/ (run, supervision), inspect/ (status) and
// sql/ (the knock) all read, so that none of them decides composition for itself.
//
// One program is installed in the postmaster and inherited by every process of the server.
// A call is decided in the kernel when every process context decides it the same way and the
// action is allow, kill or trap (an unconditional ALLOW is cached by the kernel and costs
// nothing). It returns SECCOMP_RET_USER_NOTIF, and the supervisor decides it for the calling
// process's context, when contexts differ on it (the postmaster may listen, sessions may not),
// or when the policy answers it with `error` or `log` (so that the supervisor can write it to
// the DBA's log, and name it when the server fails to start). `execve` goes to the supervisor
// whenever anything does: the launcher takes the stage's listener while the stage waits in its
// execve, and its own exec of postgres must work under a policy that denies exec to the server
// (the supervisor lets through exactly that one call). Denied calls are rare in a running
// server, so the round trip is paid almost never; a policy whose default is `log` (learning)
// pays it on every call it does not allow, by design.

import { actionRet, compileDecisions } from "./compile.js";
import type { Insn } from "../bpf/insn.js";
import { SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF } from "../seccomp/index.js";
import {
  contextDecisions, contextKey, decisionFor, otherDatabaseName, policyContexts, sameDecision,
  type ContextDecisions, type ContextSpec, type Decision, type Leaf,
} from "../policy/decision.js";
import type { SourceLoc } from "../policy/errors.js";
import type { Policy } from "../policy/policy.js";
import { RUN_REFUSAL_SOURCE, withDecision, withRunRefusals } from "./refusals.js";
import { maxSyscallNumber, syscallName, syscallNumber, type Arch } from "../syscalls/index.js";

/**
 * set_client_filter()'s knock: the SQL function seeks a file to this offset, and the installed
 * program hands exactly that lseek to the supervisor, which then narrows the calling backend.
 * Compiled only when the policy sets set_client_filter = on: the check reads an argument on
 * lseek's path, which takes lseek out of the kernel's constant-action cache.
 */
export const CLIENT_FILTER_KNOCK = 0x5ecc0f17e1370000n; // 64 KiB-aligned: glibc seeks to block boundaries

/** Leaves the launcher adds that the kernel decides, whatever the policy routes (compile/refusals.ts). */
export const STRUCTURAL_SOURCE = RUN_REFUSAL_SOURCE;
/** Leaves that send a call to the supervisor only so that it can classify the caller first. */
export const EXEC_GATE_SOURCE = "exec-gate";
/** The knock's leaf. */
export const CLIENT_FILTER_SOURCE = "set_client_filter";

/** Why the installed program hands a call to the supervisor. */
export type RouteReason =
  /** The policy's contexts decide it differently: the supervisor answers for the caller's. */
  | "contexts-differ"
  /** The policy answers it with error, terminate or log: the supervisor writes it to the DBA's log (and ends the session of a terminate). */
  | "logged"
  /** execve: the launcher's exec of postgres, and the hand-over of the listener. */
  | "launch"
  /** mmap/mprotect/pkey_mprotect with PROT_EXEC: the caller is classified before new code runs. */
  | "exec-gate"
  /** set_client_filter's knock (lseek to CLIENT_FILTER_KNOCK). */
  | "client-filter-knock"
  /**
   * seccomp, wherever contexts differ: the launcher injects a pinned context's denials by having
   * the process itself call seccomp(), which the supervisor lets through for that injection only;
   * decided in the kernel, a policy that kills or denies seccomp would kill or fail the injection.
   */
  | "inject";

export interface RoutedCall {
  readonly nr: number;
  readonly name: string;
  readonly reasons: readonly RouteReason[];
  /** Only for some argument values (the rest are decided in the kernel). */
  readonly conditional: boolean;
}

/** What a context decides, read-only. */
export interface InstalledDecisions {
  readonly arch: Arch;
  readonly context: ContextSpec;
  readonly defaultDecision: Leaf;
  readonly unknownDecision: Leaf;
  readonly named: ReadonlyMap<number, { readonly name: string; readonly decision: Decision; readonly loc?: SourceLoc }>;
}

export interface ComposeOptions {
  /**
   * The contexts whose supervisor programs to compile (default: every context the policy
   * distinguishes, policyContexts()). Others are compiled on demand with supervisorProgram().
   */
  readonly contexts?: readonly ContextSpec[];
}

/** What `run` installs for a policy on one arch, and how its supervisor answers. Frozen. */
export interface Composition {
  readonly arch: Arch;
  /** The program installed in the kernel (inherited by every process of the server). */
  readonly installed: readonly Insn[];
  /**
   * The installed program's decisions: the global context's, with the refusals, the exec gate
   * and the knock where they apply. Which leaves return USER_NOTIF is `routed`.
   */
  readonly installedDecisions: InstalledDecisions;
  /** True when some call goes to the supervisor (a listener is needed). */
  readonly usesSupervisor: boolean;
  /** The set_client_filter knock is compiled in (the policy sets set_client_filter = on). */
  readonly clientFilterKnock: boolean;
  /** Syscall numbers whose decision depends on the process's context. */
  readonly perProcess: readonly number[];
  /** Numbers the arch table does not know go to the supervisor (contexts differ on them). */
  readonly unknownRouted: boolean;
  /** Every syscall of the table the installed program hands (for some arguments) to the supervisor, by number. */
  readonly routed: readonly RoutedCall[];
  /** The policy's own program for each context (contextKey → program): what the supervisor runs for a notification. */
  readonly supervisorPrograms: ReadonlyMap<string, readonly Insn[]>;
  readonly stats: CompositionStats;
}

export interface CompositionStats {
  readonly installedInstructions: number;
  readonly contexts: number;
  readonly perProcess: number;
  readonly routed: number;
  /** Syscalls of the table the installed program allows unconditionally: the kernel caches these. */
  readonly cacheableAllows: number;
}

/**
 * In the supervisor's programs only (run in its emulator, never installed): a terminate leaf
 * returns SECCOMP_RET_ERRNO with this bit set in the data beside the errno (at most 4095, so
 * 12 bits), which tells the supervisor to end the session after failing the call. The program
 * installed in the kernel routes those calls to the supervisor, and an exported profile has the
 * errno alone.
 */
export const SUPERVISOR_TERMINATE_BIT = 0x8000;

/** The policy's own program for one context: what the supervisor runs for a notification. */
export function supervisorProgram(policy: Policy, arch: Arch, context: ContextSpec): Insn[] {
  return compileDecisions(withRunRefusals(contextDecisions(policy, arch, context)), {
    retFor: (leaf) => (leaf.action.kind === "terminate" ? actionRet({ kind: "error", errno: leaf.action.errno! | SUPERVISOR_TERMINATE_BIT }) : actionRet(leaf.action)),
  });
}

/** mmap/mprotect's flag for executable memory. */
export const PROT_EXEC = 4n;
/** shmat's flag for an executable attachment (<sys/shm.h> SHM_EXEC, 0100000). */
export const SHM_EXEC = 0o100000n;

/**
 * Calls whose `error` decision stays with the supervisor, never injected: execve and execveat,
 * whose denial it words itself (popen's shell is killed, the statement is looked up), and
 * seccomp, which the launcher's own later injections (set_client_filter) make the process call.
 * The installed program routes every `error` decision, so they stay denied for the context.
 */
const SUPERVISOR_WORDED = ["execve", "execveat", "seccomp"];

/**
 * The program `run` injects into a process once it is classified (docs/design.md, "Contexts
 * held by the kernel"): the context's own denials (error, kill, trap) of the calls the installed
 * program routes, decided in the kernel; everything else ALLOW. Stacked on the installed program, whose USER_NOTIF the kernel ranks
 * below ERRNO and KILL, a denied call never reaches the supervisor again; a call the context
 * logs or allows stays where the installed program sends it. The `error` decisions of execve,
 * execveat and seccomp stay with the supervisor (SUPERVISOR_WORDED); without it they fail (ENOSYS).
 */
export function injectedProgram(policy: Policy, arch: Arch, context: ContextSpec, installed: Pick<Composition, "routed" | "unknownRouted">): Insn[] | undefined {
  const worded = new Set(SUPERVISOR_WORDED.map((n) => syscallNumber(arch, n)).filter((n): n is number => n !== undefined));
  // Only what the installed program routes needs holding: every other call it decides in the
  // kernel alike for all contexts (and a second, logging, copy of a quiet denial would be noise).
  const routed = new Set(installed.routed.map((c) => c.nr));
  const held = (nr: number): boolean => (syscallName(arch, nr) === undefined ? installed.unknownRouted : routed.has(nr));
  let holds = false;
  const retFor = (leaf: Leaf, nr: number): number => {
    if (!held(nr) || leaf.action.kind === "allow" || leaf.action.kind === "log" || (worded.has(nr) && leaf.action.kind === "error")) return SECCOMP_RET_ALLOW;
    holds = true;
    return actionRet(leaf.action);
  };
  const prog = compileDecisions(withRunRefusals(contextDecisions(policy, arch, context)), { retFor });
  // Nothing to hold (a learning policy, a context that denies nothing routed): no filter, no stop.
  return holds ? prog : undefined;
}

function replaceLeaves(d: Decision, f: (l: Leaf) => Leaf): Decision {
  return d.kind === "leaf" ? f(d) : { ...d, then: replaceLeaves(d.then, f), else: replaceLeaves(d.else, f) };
}

function leaves(d: Decision): Leaf[] {
  return d.kind === "leaf" ? [d] : [...leaves(d.then), ...leaves(d.else)];
}

/** A leaf the supervisor should see for the policy's own sake (it logs error and log decisions, and ends the session of a terminate). */
function policyRoutes(leaf: Leaf): boolean {
  if (leaf.source === STRUCTURAL_SOURCE) return false;
  if (leaf.action.kind === "terminate") return true;
  // A quiet denial (a hardening preset's clone3 ENOSYS, which glibc meets on every thread and
  // spawn) is decided in the kernel: it is the designed path, not a violation to log.
  return (leaf.action.kind === "error" && !leaf.quiet) || leaf.action.kind === "log";
}

/**
 * The exec gate (docs/design.md, "Classification"), with per-process contexts only:
 * mmap/mprotect/pkey_mprotect asking for PROT_EXEC and shmat asking for SHM_EXEC go to the supervisor, which classifies the
 * caller (if it has not yet) before answering, so no new executable code (a LOADed library,
 * session_preload_libraries) enters a process whose context has not been pinned from facts
 * gathered before that code could run. In the installed program only: the supervisor answers
 * with the policy's own decision.
 */
function withExecGate(cd: ContextDecisions): ContextDecisions {
  let out = cd;
  for (const [name, flag] of [["mmap", PROT_EXEC], ["mprotect", PROT_EXEC], ["pkey_mprotect", PROT_EXEC], ["shmat", SHM_EXEC]] as const) {
    out = withDecision(out, name, (current) => ({
      kind: "branch",
      conds: [{ arg: 2, op: "masked_eq", mask: flag, value: flag, width: 32 }],
      then: replaceLeaves(current, (l) => (l.action.kind === "allow" || l.action.kind === "log" ? { kind: "leaf", action: { kind: "log" }, source: EXEC_GATE_SOURCE } : l)),
      else: current,
    }));
  }
  return out;
}

/**
 * The calls the installed program routes for the exec gate alone: every context decides them
 * alike, so the supervisor may answer one without classifying its caller when what it maps is
 * the server's own code (src/host/server-code.ts).
 */
export function execGateOnly(routed: readonly RoutedCall[]): number[] {
  return routed.filter((c) => c.reasons.length === 1 && c.reasons[0] === "exec-gate").map((c) => c.nr);
}

/** The knock: lseek to CLIENT_FILTER_KNOCK goes to the supervisor; every other lseek as before. */
function withClientFilterKnock(cd: ContextDecisions): ContextDecisions {
  const knock: Leaf = { kind: "leaf", action: { kind: "log" }, source: CLIENT_FILTER_SOURCE };
  return withDecision(cd, "lseek", (current) => ({
    kind: "branch",
    conds: [{ arg: 1, op: "eq", value: CLIENT_FILTER_KNOCK, width: 64 }],
    then: knock,
    else: current,
  }));
}

function freezeDecisions(cd: ContextDecisions): InstalledDecisions {
  return Object.freeze({ ...cd, named: new Map(cd.named) as ReadonlyMap<number, { name: string; decision: Decision; loc?: SourceLoc }> });
}

/**
 * What `run` installs for `policy` on `arch`, and how its supervisor answers each context.
 * Pure: the policy and every decision tree computed from it are left as they are.
 */
export function compose(policy: Policy, arch: Arch, opts: ComposeOptions = {}): Composition {
  const contexts = opts.contexts ?? policyContexts(policy);
  const all = policyContexts(policy).map((c) => contextDecisions(policy, arch, c));
  const base = all[0]!; // the global context: where every context agrees, it agrees with this
  // seccomp = off (pgseccomp.enabled not set, in pgseccomp mode): run installs nothing.
  if (!policy.enabled) {
    return Object.freeze({
      arch, installed: Object.freeze([]), installedDecisions: freezeDecisions(base), usesSupervisor: false,
      clientFilterKnock: false, perProcess: Object.freeze([]), unknownRouted: false, routed: Object.freeze([]),
      supervisorPrograms: new Map(),
      stats: Object.freeze({ installedInstructions: 0, contexts: 0, perProcess: 0, routed: 0, cacheableAllows: 0 }),
    });
  }
  const top = maxSyscallNumber(arch);
  const perProcess = new Set<number>();
  for (let nr = 0; nr <= top; nr++) {
    const d0 = decisionFor(base, nr);
    if (all.some((cd) => !sameDecision(decisionFor(cd, nr), d0, true))) perProcess.add(nr);
  }
  const unknownRouted = all.some((cd) => !sameDecision(cd.unknownDecision, base.unknownDecision, true));
  const execveNr = syscallNumber(arch, "execve");
  const clientFilterKnock = policy.clientFilter === true && syscallNumber(arch, "lseek") !== undefined;

  // Why a leaf of call `nr` goes to the supervisor, execve's "launch" aside. A refusal is decided
  // in the kernel unless contexts differ on the call (then the supervisor, whose programs carry
  // the same refusals, answers for the caller's context).
  const reasonOf = (leaf: Leaf, nr: number): RouteReason | undefined => {
    if (perProcess.has(nr) || (unknownRouted && syscallName(arch, nr) === undefined)) return "contexts-differ";
    if (leaf.source === EXEC_GATE_SOURCE) return "exec-gate";
    if (leaf.source === CLIENT_FILTER_SOURCE) return "client-filter-knock";
    return policyRoutes(leaf) ? "logged" : undefined;
  };

  // Does anything besides execve go to the supervisor (the knock included)? Then execve must too.
  let othersRouted = clientFilterKnock || unknownRouted;
  let execveEverywhereAllowed = true;
  for (let nr = 0; nr <= top; nr++) {
    for (const leaf of leaves(decisionFor(base, nr))) {
      if (nr === execveNr) execveEverywhereAllowed &&= !perProcess.has(nr) && leaf.action.kind === "allow";
      else if (reasonOf(leaf, nr) !== undefined) othersRouted = true;
    }
  }
  if (leaves(base.unknownDecision).some((l) => policyRoutes(l))) othersRouted = true;
  const execveToSupervisor = othersRouted || !execveEverywhereAllowed;

  let installedCd = withRunRefusals(base);
  if (perProcess.size > 0 || unknownRouted) installedCd = withExecGate(installedCd);
  if (clientFilterKnock) installedCd = withClientFilterKnock(installedCd);

  const seccompNr = syscallNumber(arch, "seccomp");
  const seccompToSupervisor = perProcess.size > 0 || unknownRouted;
  const retFor = (leaf: Leaf, nr: number): number =>
    (nr === execveNr && execveToSupervisor) || (nr === seccompNr && seccompToSupervisor) || reasonOf(leaf, nr) !== undefined ? SECCOMP_RET_USER_NOTIF : actionRet(leaf.action);
  const installed = compileDecisions(installedCd, { retFor });

  const routed: RoutedCall[] = [];
  let cacheableAllows = 0;
  for (let nr = 0; nr <= top; nr++) {
    const name = syscallName(arch, nr);
    if (name === undefined) continue;
    const d = decisionFor(installedCd, nr);
    const ls = leaves(d);
    const reasons = new Set<RouteReason>();
    if (nr === execveNr && execveToSupervisor) reasons.add("launch");
    if (nr === seccompNr && seccompToSupervisor) reasons.add("inject");
    for (const l of ls) {
      const r = reasonOf(l, nr);
      if (r) reasons.add(r);
    }
    if (reasons.size > 0) {
      const conditional = !reasons.has("launch") && !reasons.has("inject") && ls.some((l) => reasonOf(l, nr) === undefined);
      routed.push(Object.freeze({ nr, name, reasons: Object.freeze([...reasons]), conditional }));
    } else if (d.kind === "leaf" && d.action.kind === "allow") {
      cacheableAllows++;
    }
  }

  const supervisorPrograms = new Map<string, readonly Insn[]>();
  for (const c of contexts) {
    const key = contextKey(c);
    if (!supervisorPrograms.has(key)) supervisorPrograms.set(key, Object.freeze(supervisorProgram(policy, arch, c)));
  }

  return Object.freeze({
    arch,
    installed: Object.freeze(installed),
    installedDecisions: freezeDecisions(installedCd),
    usesSupervisor: execveToSupervisor,
    clientFilterKnock,
    perProcess: Object.freeze([...perProcess]),
    unknownRouted,
    routed: Object.freeze(routed),
    supervisorPrograms,
    stats: Object.freeze({
      installedInstructions: installed.length,
      contexts: supervisorPrograms.size,
      perProcess: perProcess.size,
      routed: routed.length,
      cacheableAllows,
    }),
  });
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
  // Physical walsenders and walsenders with a database (which run SQL).
  const walsenders = [{ context: "walsender" as const }, { context: "walsender" as const, database: otherDatabaseName(policy) }].map((c) => contextDecisions(policy, arch, c));
  if (walsenders.some((w) => !sameDecision(session.unknownDecision, w.unknownDecision, true))) return true;
  const logs = (d: Decision): boolean => (d.kind === "leaf" ? d.action.kind === "log" : logs(d.then) || logs(d.else));
  if (logs(session.defaultDecision) || logs(session.unknownDecision)) return true;
  for (let nr = 0; nr <= maxSyscallNumber(arch); nr++) {
    const d = decisionFor(session, nr);
    if (logs(d) || walsenders.some((w) => !sameDecision(d, decisionFor(w, nr), true))) return true;
  }
  return false;
}
