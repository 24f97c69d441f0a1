// Property: the whole decision path `run` sets up gives what the policy says. A call first runs
// through the one program installed in the kernel (shared by every process of the server); when
// that answers SECCOMP_RET_USER_NOTIF, the supervisor decides with the policy's own program for
// the calling process's context. The outcome must be the reference evaluation's for that
// context: same action kind (log counts as allow: the kernel lets a LOG call run, and so does
// the supervisor, which writes the log line itself), same errno. Pure: emulator only.

import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { compose, supervisorProgram } from "../compile/compose.js";
import { decide, type LaunchGate } from "./supervisor.js";
import { compileFilter } from "../bpf/emulator.js";
import {
  AUDIT_ARCH, AUDIT_ARCH_I386, describeSeccompRet, SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW,
  SECCOMP_RET_DATA, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_LOG,
  SECCOMP_RET_TRAP, SECCOMP_RET_USER_NOTIF, type SeccompData,
} from "../seccomp/index.js";
import { parsePolicyText, type Policy } from "../policy/policy.js";
import { evaluatePolicy } from "../policy/evaluate.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import type { Action } from "../policy/actions.js";
import { syscallNumber, type Arch } from "../syscalls/index.js";
import { MANY_CONTEXTS, callArb, contextPolicyArb, hex } from "../../test/support/policy-arbitraries.js";

/** What happens to the call, as the process sees it. */
type Outcome = { kind: "continue" } | { kind: "error"; errno: number } | { kind: "trap" } | { kind: "kill" };

function expected(a: Action): Outcome {
  switch (a.kind) {
    case "allow":
    case "log":
      return { kind: "continue" };
    case "error":
    case "terminate": // the call fails with its errno (the supervisor then ends the session)
      return { kind: "error", errno: a.errno! };
    case "trap":
      return { kind: "trap" };
    case "kill":
      return { kind: "kill" };
  }
}

interface Path {
  outcome: Outcome;
  /** Whether the supervisor decided (the kernel program answered USER_NOTIF). */
  notified: boolean;
}

/** The installed program, then the supervisor for `ctx` when the kernel hands the call over. */
function decisionPath(policy: Policy, arch: Arch, ctx: ContextSpec) {
  const kernel = compileFilter(compose(policy, arch).installed);
  const supervisor = compileFilter(supervisorProgram(policy, arch, ctx));
  // The launcher's own exec of postgres is long done: the gate is closed.
  const gate: LaunchGate = { pending: false, stagePid: 1, execveNr: syscallNumber(arch, "execve")! };
  return (d: SeccompData): Path => {
    const ret = kernel(d).ret;
    const action = (ret & SECCOMP_RET_ACTION_FULL) >>> 0;
    if (action === SECCOMP_RET_USER_NOTIF) {
      const v = decide(supervisor, d, 4242, gate);
      const outcome: Outcome =
        v.kind === "continue" ? { kind: "continue" } : v.kind === "error" ? { kind: "error", errno: v.errno } : v.action === "trap" ? { kind: "trap" } : { kind: "kill" };
      return { outcome, notified: true };
    }
    switch (action) {
      case SECCOMP_RET_ALLOW:
      case SECCOMP_RET_LOG:
        return { outcome: { kind: "continue" }, notified: false };
      case SECCOMP_RET_ERRNO:
        return { outcome: { kind: "error", errno: ret & SECCOMP_RET_DATA }, notified: false };
      case SECCOMP_RET_TRAP:
        return { outcome: { kind: "trap" }, notified: false };
      case SECCOMP_RET_KILL_PROCESS:
      case SECCOMP_RET_KILL_THREAD:
        return { outcome: { kind: "kill" }, notified: false };
      default:
        throw new Error(`the installed program returned ${describeSeccompRet(ret)}`);
    }
  };
}

const RANK: Record<Outcome["kind"], number> = { continue: 0, error: 1, trap: 2, kill: 3 };

/**
 * What `run` adds to every policy (src/compile/compose.ts, compile/refusals.ts): clone with CLONE_PARENT fails
 * with EPERM and clone3 with ENOSYS, unless the policy is stricter still.
 */
function withRunRules(arch: Arch, d: SeccompData, want: Outcome): Outcome {
  let rule: Outcome | undefined;
  if (d.arch === AUDIT_ARCH[arch] && d.nr === syscallNumber(arch, "clone") && (d.args[0]! & 0x8000n) !== 0n) rule = { kind: "error", errno: 1 };
  if (d.arch === AUDIT_ARCH[arch] && d.nr === syscallNumber(arch, "clone3")) rule = { kind: "error", errno: 38 };
  return rule && RANK[rule.kind] >= RANK[want.kind] ? rule : want;
}

const show = (o: Outcome) => (o.kind === "error" ? `error(${o.errno})` : o.kind);

for (const arch of ["x86_64", "aarch64"] as const) {
  test(`property: installed program + supervisor agree with the policy in every context (${arch}, seeded)`, () => {
    let cases = 0;
    let notified = 0;
    fc.assert(
      fc.property(
        contextPolicyArb,
        fc.array(fc.constantFrom(...MANY_CONTEXTS), { minLength: 3, maxLength: 3 }),
        fc.array(callArb(arch), { minLength: 30, maxLength: 30 }),
        (text, contexts, calls) => {
          const policy = parsePolicyText(text, "random.conf");
          for (const ctx of contexts) {
            const path = decisionPath(policy, arch, ctx);
            for (const c of calls) {
              const d: SeccompData = { nr: c.nr, arch: c.foreign ? AUDIT_ARCH_I386 : AUDIT_ARCH[arch], instructionPointer: 0n, args: c.args };
              const want = withRunRules(arch, d, expected(evaluatePolicy(policy, arch, ctx, d)));
              const got = path(d);
              if (show(got.outcome) !== show(want)) {
                throw new Error(
                  `${contextKey(ctx)}: nr ${c.nr}${c.foreign ? " (foreign arch)" : ""} args ${c.args.map(hex).join(",")}: ` +
                    `${got.notified ? "supervisor" : "kernel"} gives ${show(got.outcome)}, the policy ${show(want)}\n${text}`,
                );
              }
              cases++;
              if (got.notified) notified++;
            }
          }
        },
      ),
      { seed: 20260301, numRuns: 150 },
    );
    // Both halves of the path were exercised.
    assert.ok(cases >= 10_000, `${cases} cases`);
    assert.ok(notified >= 500 && cases - notified >= 500, `${notified} of ${cases} went to the supervisor`);
  });
}

test("decision path: a call the contexts disagree on goes to the supervisor, which answers per context", () => {
  const policy = parsePolicyText(
    "global_syscall_default = 'allow'\npostmaster_syscall_default = 'allow'\nsession_syscall_default = 'allow'\nsession_syscall_error = 'listen'\n",
    "t.conf",
  );
  const d: SeccompData = { nr: syscallNumber("x86_64", "listen")!, arch: AUDIT_ARCH.x86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] };
  const pm = decisionPath(policy, "x86_64", { context: "postmaster" })(d);
  const session = decisionPath(policy, "x86_64", { context: "session" })(d);
  assert.deepEqual(pm, { outcome: { kind: "continue" }, notified: true });
  assert.deepEqual(session, { outcome: { kind: "error", errno: 13 }, notified: true });
});
