// `status`: the kernel's filters, stacked as the kernel stacks them, against the program `run`
// installs for a policy and what its supervisor answers. Pure.

import { compileFilter, type CompiledFilter } from "../bpf/emulator.js";
import { type Insn } from "../bpf/insn.js";
import {
  AUDIT_ARCH, AUDIT_ARCH_ARM, AUDIT_ARCH_I386, X32_SYSCALL_BIT, describeSeccompRet, retData, seccompActionOf, stackedRet, type SeccompData,
} from "../seccomp/index.js";
import { compose, supervisorProgram, SUPERVISOR_TERMINATE_BIT, type Composition } from "../compile/compose.js";
import { type ContextSpec } from "../policy/decision.js";
import { type Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import { allSyscalls, maxSyscallNumber, type Arch } from "../syscalls/index.js";

// =============================================================================================
// Stacked filters and the comparison

/** One seccomp_data a comparison evaluates: a syscall of the table, or an edge case. */
export interface Probe {
  syscall: string;
  syscallnum: number;
  data: SeccompData;
}

const ZERO_ARGS: readonly bigint[] = [0n, 0n, 0n, 0n, 0n, 0n];

/**
 * Every number of the arch's table with zero arguments, then three edge cases: the first number
 * past the table, and a foreign ABI (x86_64: an x32 call and an i386 call; aarch64: an arm call).
 */
export function probesFor(arch: Arch): Probe[] {
  const native = AUDIT_ARCH[arch];
  const data = (nr: number, a = native): SeccompData => ({ nr, arch: a, instructionPointer: 0n, args: ZERO_ARGS });
  const probes: Probe[] = allSyscalls(arch).map((s) => ({ syscall: s.name, syscallnum: s.nr, data: data(s.nr) }));
  const past = maxSyscallNumber(arch) + 1;
  probes.push({ syscall: `<unknown ${past}>`, syscallnum: past, data: data(past) });
  if (arch === "x86_64") {
    probes.push({ syscall: "<x32 read>", syscallnum: X32_SYSCALL_BIT, data: data(X32_SYSCALL_BIT) });
    probes.push({ syscall: "<i386 restart_syscall>", syscallnum: 0, data: data(0, AUDIT_ARCH_I386) });
  } else {
    probes.push({ syscall: "<arm restart_syscall>", syscallnum: 0, data: data(0, AUDIT_ARCH_ARM) });
  }
  return probes;
}

/**
 * A return value in the policy's words: "allow", "log", "error:EACCES", "trap", "kill", and for
 * what a policy cannot say "kill_thread", "user_notif", "trace(n)", "UNKNOWN(0x...)".
 */
export function describeRetInPolicyTerms(ret: number): string {
  const data = retData(ret);
  switch (seccompActionOf(ret)?.name) {
    case "ALLOW":
      return "allow";
    case "LOG":
      return "log";
    case "ERRNO":
      return `error:${errnoName(data)}`;
    case "TRAP":
      return data ? `trap(${data})` : "trap";
    case "KILL_PROCESS":
      return "kill";
    case "KILL_THREAD":
      return "kill_thread";
    case "USER_NOTIF":
      return "user_notif";
    case "TRACE":
      return `trace(${data})`;
    case undefined:
      return describeSeccompRet(ret);
  }
}

const isNotif = (ret: number): boolean => seccompActionOf(ret)?.name === "USER_NOTIF";

/**
 * describeRetInPolicyTerms, except that USER_NOTIF says what the supervisor answers:
 * "error:EACCES (supervisor)". The supervisor (src/supervisor/supervisor.ts) cannot trap a process
 * from the outside, so where the policy's program traps, it kills.
 */
export function describeVerdict(ret: number, data: SeccompData, supervisor: CompiledFilter | undefined): string {
  if (isNotif(ret) && supervisor) {
    const answer = supervisor(data).ret;
    const action = seccompActionOf(answer)?.name;
    const killed = action === "TRAP" || action === "KILL_THREAD" || action === "KILL_PROCESS";
    if (action === "ERRNO" && retData(answer) & SUPERVISOR_TERMINATE_BIT) return `terminate:${errnoName(retData(answer) & ~SUPERVISOR_TERMINATE_BIT)} (supervisor)`;
    return `${killed ? "kill" : describeRetInPolicyTerms(answer)} (supervisor)`;
  }
  return describeRetInPolicyTerms(ret);
}

function compileTrusted(prog: readonly Insn[]): CompiledFilter {
  try {
    return compileFilter(prog);
  } catch {
    // The kernel accepted it, so it is valid by the kernel's rules; run it as it is.
    return compileFilter(prog, { skipValidation: true });
  }
}

export interface VerdictRow {
  syscall: string;
  syscallnum: number;
  /** The combined verdict of the kernel's filters (null when they could not be read). */
  kernel_action: string | null;
  policy_action: string;
  kernelRet: number | null;
  policyRet: number;
  differs: boolean;
}

export interface FilterComparison {
  /** How many seccomp_data were evaluated. */
  checked: number;
  /** Filters the kernel holds. */
  programs: number;
  /** Index (0 = newest) of a kernel program identical, instruction for instruction, to the expected one; null if none. */
  identicalProgram: number | null;
  matches: boolean;
  differences: VerdictRow[];
  rows: VerdictRow[];
}

/** What `run` installs for a policy, and what its supervisor answers for one process context. */
export interface Expectation {
  arch: Arch;
  /** The process context the supervisor's answers are for (global unless given). */
  context: ContextSpec;
  /** The one program run installs in the postmaster (every process inherits it). */
  programs: Composition;
  probes: Probe[];
  /** The policy's own program for `context`: how the supervisor answers a USER_NOTIF verdict. */
  supervisor: CompiledFilter;
  expectedRets: number[];
}

export function expectationFor(policy: Policy, arch: Arch, context: ContextSpec = { context: "global" }): Expectation {
  const programs = compose(policy, arch);
  const installed = compileTrusted(programs.installed);
  const probes = probesFor(arch);
  return { arch, context, programs, probes, supervisor: supervisorFor(policy, arch, context), expectedRets: probes.map((p) => installed(p.data).ret) };
}

/** The same expectation with the supervisor's answers for another process context. */
export function forContext(exp: Expectation, policy: Policy, context: ContextSpec): Expectation {
  return { ...exp, context, supervisor: supervisorFor(policy, exp.arch, context) };
}

/** The program the supervisor runs for a process of `context` (src/supervisor/supervisor.ts). */
export function supervisorFor(policy: Policy, arch: Arch, context: ContextSpec): CompiledFilter {
  return compileTrusted(supervisorProgram(policy, arch, context));
}

/** The kernel's verdict for every probe: each program run, the results combined as the kernel does. */
export function stackedVerdicts(kernel: readonly (readonly Insn[])[], probes: readonly Probe[]): number[] {
  const filters = kernel.map(compileTrusted);
  return probes.map((p) => stackedRet(filters.map((f) => f(p.data).ret)));
}

function sameProgram(a: readonly Insn[], b: readonly Insn[]): boolean {
  return a.length === b.length && a.every((x, i) => {
    const y = b[i]!;
    return x.code === y.code && x.jt === y.jt && x.jf === y.jf && x.k >>> 0 === y.k >>> 0;
  });
}

/**
 * A call the installed program hands to the supervisor, whose denial for this process's context
 * the kernel already gives: the context's denials injected into the process once it was
 * classified (docs/design.md, "Contexts held by the kernel"). The same outcome, not a difference.
 */
function heldInKernel(kernelRet: number, policyRet: number, supervisorRet: number): boolean {
  const action = (kernelRet & 0xffff0000) >>> 0;
  const denial = action === 0x80000000 || action === 0 || action === 0x00030000 || action === 0x00050000; // kill process, kill thread, trap, errno
  return isNotif(policyRet) && !isNotif(kernelRet) && denial && kernelRet >>> 0 === supervisorRet >>> 0;
}

/**
 * Compare the filters the kernel holds (index 0 = newest) with what the policy installs.
 * `supervisor` is the program the running supervisor answers notifications with (the policy
 * `run` was started with); by default, the compared policy's own. A syscall differs when the
 * kernel's verdict differs, or when both go to the supervisor and its answer differs.
 */
export function compareFilters(kernel: readonly (readonly Insn[])[], exp: Expectation, supervisor: CompiledFilter = exp.supervisor): FilterComparison {
  const got = stackedVerdicts(kernel, exp.probes);
  const rows = exp.probes.map((p, i): VerdictRow => {
    const k = got[i]!;
    const e = exp.expectedRets[i]!;
    const kernelAction = describeVerdict(k, p.data, supervisor);
    const policyAction = describeVerdict(e, p.data, exp.supervisor);
    return {
      syscall: p.syscall,
      syscallnum: p.syscallnum,
      kernel_action: kernelAction,
      policy_action: policyAction,
      kernelRet: k,
      policyRet: e,
      differs: !heldInKernel(k, e, supervisor(p.data).ret) && (k !== e || (isNotif(k) && supervisor(p.data).ret !== exp.supervisor(p.data).ret)),
    };
  });
  const differences = rows.filter((r) => r.differs);
  const identical = kernel.findIndex((p) => sameProgram(p, exp.programs.installed));
  return {
    checked: rows.length,
    programs: kernel.length,
    identicalProgram: identical < 0 ? null : identical,
    matches: kernel.length > 0 && differences.length === 0,
    differences,
    rows,
  };
}

/** The policy's side alone (when the kernel's filters cannot be read). */
export function policyRows(exp: Expectation): VerdictRow[] {
  return exp.probes.map((p, i) => ({
    syscall: p.syscall,
    syscallnum: p.syscallnum,
    kernel_action: null,
    policy_action: describeVerdict(exp.expectedRets[i]!, p.data, exp.supervisor),
    kernelRet: null,
    policyRet: exp.expectedRets[i]!,
    differs: false,
  }));
}
