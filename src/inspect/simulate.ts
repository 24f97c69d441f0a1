// `sim`: run one syscall through the compiled program in the emulator, beside what the policy
// says, so a DBA can see both agree.

import { compilePolicy } from "../compile/compile.js";
import { emulate } from "../bpf/emulator.js";
import { contextDecisions, decisionFor, type ContextSpec } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { resolveSyscall, syscallName, type Arch } from "../syscalls/index.js";
import { describeDecision } from "../render/effective-table.js";
import { PolicyError } from "../policy/errors.js";
import { AUDIT_ARCH, describeSeccompRet, type SeccompData } from "../seccomp/index.js";

export interface SimResult {
  arch: Arch;
  context: string;
  syscall: string | null;
  nr: number;
  args: bigint[];
  ret: number;
  action: string;
  policyDecision: string;
  executed: number;
  programLength: number;
}

/** Resolves a syscall given by name or number on an arch. */
export function syscallArg(arch: Arch, text: string): number {
  if (/^\d+$/.test(text)) return Number(text);
  const r = resolveSyscall(arch, text);
  if (!r.ok) throw new PolicyError(undefined, r.message);
  return r.nr;
}

export function simulate(policy: Policy, arch: Arch, ctx: ContextSpec, nr: number, args: bigint[]): SimResult {
  const prog = compilePolicy(policy, arch, ctx);
  const data: SeccompData = { nr, arch: AUDIT_ARCH[arch], instructionPointer: 0n, args };
  const r = emulate(prog, data);
  const cd = contextDecisions(policy, arch, ctx);
  return {
    arch,
    context: ctx.role ? `${ctx.context} (role ${ctx.role})` : ctx.context,
    syscall: syscallName(arch, nr) ?? null,
    nr,
    args,
    ret: r.ret,
    action: describeSeccompRet(r.ret),
    policyDecision: describeDecision(decisionFor(cd, nr), policy.errorErrno),
    executed: r.executed,
    programLength: prog.length,
  };
}
