// Kernel agreement: compiled policies are loaded into real child processes (no_new_privs +
// seccomp(2) through koffi), which then make syscalls. What happens to each call — it runs,
// fails with the policy's errno, traps, or the process dies of SIGSYS — must be what the
// emulator says the same program does.

import { test } from "node:test";
import assert from "node:assert/strict";
import { compilePolicy } from "../src/compile/compile.js";
import { compileFilter } from "../src/bpf/emulator.js";
import {
  AUDIT_ARCH, describeSeccompRet, SECCOMP_RET_ACTION_FULL, SECCOMP_RET_DATA, X32_SYSCALL_BIT,
} from "../src/seccomp/index.js";
import { parsePolicyText, type Policy } from "../src/policy/policy.js";
import type { ContextSpec } from "../src/policy/decision.js";
import { hostArch, type Arch } from "../src/syscalls/index.js";
import { hostNr, probeSkip, runUnderFilter, showProbe, type ProbeCall, type ProbeRun } from "./support/kernel-probe.js";

const skip = probeSkip();
const arch: Arch = hostArch();
const nr = hostNr;

// Filter errnos chosen so that no real call returns them: an errno seen is the filter's.
const POLICY = `
syscall_error_errno = EXFULL
global_syscall_default = 'error'
global_syscall_allow = 'write, exit_group, rt_sigreturn, getpid, getppid, kill(arg1 == 0), dup, sched_yield,
  fcntl(arg1 == 1, arg2:64 != 0x100000001), getpriority(arg0 < 3), umask(arg0 & 0o7000 == 0)'
global_syscall_error = 'getuid:ENOSYS, getgid:EL2HLT'
global_syscall_log = 'geteuid'
global_syscall_trap = 'getegid'
global_syscall_kill = 'gettid, fcntl(arg1 == 1, arg2:64 == 0x100000001)'
session_syscall_default = 'error:EDOM'
session_syscall_allow = 'write, exit_group, rt_sigreturn, getpid, getppid, sched_yield, fcntl(arg2:64 == 5), umask'
session_syscall_error = '*, dup:ENOTUNIQ, kill'
session_syscall_log = '*'
session_syscall_trap = '*'
session_syscall_kill = '*'
`.replace(/,\n  /g, ", ");

/** Calls that succeed when allowed, so any errno comes from the filter. */
const CALLS: Array<{ label: string; call: ProbeCall }> = [
  { label: "getpid()", call: { nr: nr("getpid") } },
  { label: "getppid()", call: { nr: nr("getppid") } },
  { label: "sched_yield()", call: { nr: nr("sched_yield") } },
  { label: "getuid()", call: { nr: nr("getuid") } },
  { label: "getgid()", call: { nr: nr("getgid") } },
  { label: "geteuid()", call: { nr: nr("geteuid") } },
  { label: "kill(0, 0)", call: { nr: nr("kill"), args: [0n, 0n] } },
  { label: "kill(0, 0x100000000) (sig is a 32-bit int: upper half ignored)", call: { nr: nr("kill"), args: [0n, 0x100000000n] } },
  { label: "dup(1)", call: { nr: nr("dup"), args: [1n] } },
  { label: "fcntl(1, F_GETFD, 0)", call: { nr: nr("fcntl"), args: [1n, 1n, 0n] } },
  { label: "fcntl(1, F_GETFD, 5)", call: { nr: nr("fcntl"), args: [1n, 1n, 5n] } },
  { label: "fcntl(1, F_GETFD, 0x1_00000000)", call: { nr: nr("fcntl"), args: [1n, 1n, 0x100000000n] } },
  { label: "fcntl(1, F_GETFD, 0xffffffff_00000001)", call: { nr: nr("fcntl"), args: [1n, 1n, 0xffffffff00000001n] } },
  { label: "getpriority(0, 0)", call: { nr: nr("getpriority"), args: [0n, 0n] } },
  { label: "getpriority(3, 0)", call: { nr: nr("getpriority"), args: [3n, 0n] } },
  { label: "umask(022)", call: { nr: nr("umask"), args: [0o22n] } },
  { label: "umask(04022)", call: { nr: nr("umask"), args: [0o4022n] } },
  { label: "syscall 1000 (unknown to the table)", call: { nr: 1000 } },
  { label: "getegid()", call: { nr: nr("getegid") } },
  { label: "fcntl(1, F_GETFD, 0x1_00000001)", call: { nr: nr("fcntl"), args: [1n, 1n, 0x100000001n] } },
  { label: "gettid()", call: { nr: nr("gettid") } },
];

type Expected = { kind: "runs" } | { kind: "errno"; errno: number } | { kind: "trap"; data: number } | { kind: "killed" };

function expected(policy: Policy, ctx: ContextSpec, call: ProbeCall): Expected {
  const filter = compileFilter(compilePolicy(policy, arch, ctx));
  const ret = filter({ nr: call.nr, arch: AUDIT_ARCH[arch], instructionPointer: 0n, args: [...(call.args ?? []), 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6) }).ret;
  const action = (ret & SECCOMP_RET_ACTION_FULL) >>> 0;
  const data = ret & SECCOMP_RET_DATA;
  switch (describeSeccompRet(ret).replace(/\(.*\)/, "")) {
    case "ALLOW":
    case "LOG":
      return { kind: "runs" };
    case "ERRNO":
      return { kind: "errno", errno: data };
    case "TRAP":
      return { kind: "trap", data };
    case "KILL_PROCESS":
    case "KILL_THREAD":
      return { kind: "killed" };
    default:
      throw new Error(`unexpected action ${action.toString(16)}`);
  }
}

/** Runs the calls in order; a call that kills ends a run, and the next run starts after it. */
async function checkContext(policy: Policy, ctx: ContextSpec, calls = CALLS): Promise<number> {
  const prog = compilePolicy(policy, arch, ctx);
  let checked = 0;
  let start = 0;
  while (start < calls.length) {
    const wants = calls.slice(start).map((c) => expected(policy, ctx, c.call));
    const killAt = wants.findIndex((w) => w.kind === "killed");
    const batch = calls.slice(start, killAt < 0 ? calls.length : start + killAt + 1);
    const run: ProbeRun = await runUnderFilter(prog, batch.map((c) => c.call));
    for (let i = 0; i < batch.length; i++) {
      const want = wants[i]!;
      const label = `${ctx.context}: ${batch[i]!.label}`;
      if (want.kind === "killed") {
        assert.equal(run.outcome, "killed", `${label}: expected SIGSYS, got ${run.outcome}`);
        assert.equal(run.signal, "SIGSYS", label);
        assert.equal(run.results.length, i, `${label}: the call must not return`);
      } else {
        const got = run.results[i];
        assert.ok(got, `${label}: no result (outcome ${run.outcome}, signal ${run.signal}) ${run.stderr}`);
        if (want.kind === "runs") assert.equal(got.kind, "returned", `${label}: ${showProbe(got)}`);
        if (want.kind === "errno") assert.deepEqual(got.kind === "errno" ? got.errno : got, want.errno, label);
        if (want.kind === "trap") assert.deepEqual(got.kind === "trapped" ? got.data : got, want.data, label);
      }
      checked++;
    }
    start += batch.length;
  }
  return checked;
}

test("kernel agrees with the emulator: allow, log, errno (configured and per entry), trap, kill, 64- and 32-bit argument conditions", { skip }, async () => {
  const policy = parsePolicyText(POLICY, "agreement.conf");
  const g = await checkContext(policy, { context: "global" });
  const s = await checkContext(policy, { context: "session" });
  assert.equal(g + s, CALLS.length * 2);
});

test("the kernel really applies the outcomes we expect (not just whatever the emulator says)", { skip }, async () => {
  const policy = parsePolicyText(POLICY, "agreement.conf");
  const prog = compilePolicy(policy, arch, { context: "global" });
  const run = await runUnderFilter(prog, [
    { nr: nr("getuid") }, { nr: nr("getgid") }, { nr: nr("geteuid") }, { nr: nr("fcntl"), args: [1n, 1n, 0n] }, { nr: 1000 }, { nr: nr("gettid") },
  ]);
  const [uid, gid, euid, fcntl, unknown] = run.results;
  assert.deepEqual(uid && uid.kind === "errno" && uid.code, "ENOSYS");
  assert.deepEqual(gid && gid.kind === "errno" && gid.code, "EL2HLT");
  assert.equal(euid?.kind, "returned");
  assert.equal(fcntl?.kind, "returned");
  assert.deepEqual(unknown && unknown.kind === "errno" && unknown.code, "ENOSYS");
  assert.equal(run.outcome, "killed");
  assert.equal(run.signal, "SIGSYS");
  assert.equal(run.results.length, 5);
});

test("x32 syscall numbers are killed on x86_64", { skip: skip || (arch !== "x86_64" && "x86_64 only") }, async () => {
  const policy = parsePolicyText("global_syscall_default = allow\n", "allow.conf");
  const run = await runUnderFilter(compilePolicy(policy, arch, { context: "global" }), [{ nr: nr("getpid") }, { nr: X32_SYSCALL_BIT + nr("getpid") }]);
  assert.equal(run.results[0]?.kind, "returned");
  assert.equal(run.outcome, "killed");
  assert.equal(run.signal, "SIGSYS");
});

test("run's program refuses clone(CLONE_PARENT) and clone3 in the kernel, whatever the policy allows", { skip }, async () => {
  const { compose } = await import("../src/compile/compose.js");
  const policy = parsePolicyText("global_syscall_default = allow\n", "allow.conf");
  const prog = compose(policy, arch).installed;
  const CLONE_PARENT = 0x8000n;
  const SIGCHLD = 17n;
  const run = await runUnderFilter(prog, [{ nr: nr("getpid") }, { nr: nr("clone"), args: [CLONE_PARENT | SIGCHLD, 0n, 0n, 0n, 0n] }, { nr: nr("clone3"), args: [0n, 0n] }]);
  assert.equal(run.results[0]?.kind, "returned");
  assert.deepEqual(run.results[1] && run.results[1].kind === "errno" && run.results[1].code, "EPERM");
  assert.deepEqual(run.results[2] && run.results[2].kind === "errno" && run.results[2].code, "ENOSYS");
});
