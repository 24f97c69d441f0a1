import { test } from "node:test";
import assert from "node:assert/strict";
import fc from "fast-check";
import { compilePolicy, actionRet, CompileError } from "./compile.js";
import { compileFilter } from "../bpf/emulator.js";
import { validateProgram } from "../bpf/validate.js";
import { BPF_ABS, BPF_JA, BPF_JMP, BPF_LD, BPF_W } from "../bpf/insn.js";
import {
  AUDIT_ARCH, AUDIT_ARCH_I386, describeSeccompRet, type SeccompData, X32_SYSCALL_BIT,
} from "../seccomp/index.js";
import { parsePolicyText, type Policy } from "../policy/policy.js";
import { evaluatePolicy } from "../policy/evaluate.js";
import type { ContextSpec } from "../policy/decision.js";
import { allSyscalls, syscallNumber, type Arch } from "../syscalls/index.js";
import { CONTEXTS, callArb, hex, policyArb } from "../../test/support/policy-arbitraries.js";

const data = (arch: Arch, name: string | number, args: bigint[] = []): SeccompData => ({
  nr: typeof name === "number" ? name : syscallNumber(arch, name)!,
  arch: AUDIT_ARCH[arch],
  instructionPointer: 0n,
  args: [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6),
});

function run(policy: Policy, arch: Arch, ctx: ContextSpec, d: SeccompData): string {
  return describeSeccompRet(compileFilter(compilePolicy(policy, arch, ctx))(d).ret);
}

const SAMPLE = `
global_syscall_default = 'kill'
global_syscall_allow = 'read, write, exit_group, socket(arg0 == 1), socket(arg0 == 2), ioctl(arg1 & 0xff00 == 0x5400), clone(arg0 & 0x7e020000 == 0)'
global_syscall_error = 'clone3:ENOSYS, execve, personality(arg0 != 0xffffffff)'
global_syscall_log = 'getppid'
session_syscall_default = 'error'
session_syscall_allow = '*, kill(arg1:64 >= 0x100000000)'
`;

test("compiled sample agrees with the policy on chosen calls", () => {
  const p = parsePolicyText(SAMPLE, "sample.conf");
  const g: ContextSpec = { context: "global" };
  const s: ContextSpec = { context: "session" };
  assert.equal(run(p, "x86_64", g, data("x86_64", "read")), "ALLOW");
  assert.equal(run(p, "x86_64", g, data("x86_64", "mount")), "KILL_PROCESS");
  assert.equal(run(p, "x86_64", g, data("x86_64", "clone3")), "ERRNO(38)");
  assert.equal(run(p, "x86_64", g, data("x86_64", "execve")), "ERRNO(13)");
  assert.equal(run(p, "x86_64", g, data("x86_64", "getppid")), "LOG");
  assert.equal(run(p, "x86_64", g, data("x86_64", "socket", [1n])), "ALLOW");
  assert.equal(run(p, "x86_64", g, data("x86_64", "socket", [16n])), "KILL_PROCESS");
  // socket's domain is an int: the upper half of the register is ignored.
  assert.equal(run(p, "x86_64", g, data("x86_64", "socket", [0xdeadbeef00000002n])), "ALLOW");
  assert.equal(run(p, "x86_64", g, data("x86_64", "ioctl", [0n, 0x5401n])), "ALLOW");
  assert.equal(run(p, "x86_64", g, data("x86_64", "ioctl", [0n, 0x8901n])), "KILL_PROCESS");
  assert.equal(run(p, "x86_64", g, data("x86_64", "clone", [0x01200011n])), "ALLOW"); // fork-like
  assert.equal(run(p, "x86_64", g, data("x86_64", "clone", [0x10000000n])), "KILL_PROCESS"); // CLONE_NEWUSER
  assert.equal(run(p, "x86_64", g, data("x86_64", "personality", [0xffffffffn])), "KILL_PROCESS");
  assert.equal(run(p, "x86_64", g, data("x86_64", "personality", [8n])), "ERRNO(13)");
  // Session: default error; kill with a 64-bit condition on a 32-bit-in-kernel arg uses :64 semantics only when asked.
  assert.equal(run(p, "x86_64", s, data("x86_64", "read")), "ALLOW");
  assert.equal(run(p, "x86_64", s, data("x86_64", "mount")), "KILL_PROCESS");
  // Missing session lists inherit the global ones: getppid stays in the log list.
  assert.equal(run(p, "x86_64", s, data("x86_64", "getppid")), "LOG");
  assert.equal(run(p, "x86_64", s, data("x86_64", "uname")), "KILL_PROCESS");
  // A session filter cannot loosen the global one: global kills kill(2) whatever the session allows.
  assert.equal(run(p, "x86_64", s, data("x86_64", "kill", [1n, 0x100000009n])), "KILL_PROCESS");
  // Foreign arch, i386 and x32 are killed.
  assert.equal(run(p, "x86_64", g, { ...data("x86_64", "read"), arch: AUDIT_ARCH_I386 }), "KILL_PROCESS");
  assert.equal(run(p, "x86_64", g, data("x86_64", X32_SYSCALL_BIT + 0)), "KILL_PROCESS");
  assert.equal(run(p, "aarch64", g, data("aarch64", "read")), "ALLOW");
  assert.equal(run(p, "aarch64", g, data("x86_64", "read")), "KILL_PROCESS");
});

test("unknown numbers get ENOSYS when the default denies, and follow an allow/log default", () => {
  const p = parsePolicyText("global_syscall_default = kill\nglobal_syscall_allow = 'read'\n", "t.conf");
  assert.equal(run(p, "x86_64", { context: "global" }, data("x86_64", 5000)), "ERRNO(38)");
  assert.equal(run(p, "x86_64", { context: "global" }, data("x86_64", 400)), "ERRNO(38)"); // a hole in the table (387..423)
  const q = parsePolicyText("global_syscall_default = log\n", "t.conf");
  assert.equal(run(q, "x86_64", { context: "global" }, data("x86_64", 5000)), "LOG");
  const r = parsePolicyText("global_syscall_default = kill\nsyscall_unknown_action = default\n", "t.conf");
  assert.equal(run(r, "x86_64", { context: "global" }, data("x86_64", 5000)), "KILL_PROCESS");
});

test("every unconditional syscall's path reads only arch and nr (kernel constant-action cache)", () => {
  const p = parsePolicyText(SAMPLE, "sample.conf");
  for (const arch of ["x86_64", "aarch64"] as const) {
    const prog = compilePolicy(p, arch, { context: "global" });
    const filter = compileFilter(prog);
    for (const { name, nr } of allSyscalls(arch)) {
      if (["socket", "ioctl", "clone", "personality"].includes(name)) continue;
      const { path } = filter(data(arch, nr, [0xffffffffffffffffn, 1n, 2n]), { recordPath: true });
      for (const pc of path!) {
        const ins = prog[pc]!;
        if (ins.code === (BPF_LD | BPF_W | BPF_ABS)) assert.ok(ins.k === 0 || ins.k === 4, `${arch} ${name} reads offset ${ins.k}`);
      }
    }
  }
});

test("long programs use ja for jumps past 255 and stay valid; the 4096 limit is an error", () => {
  // Alternate actions so no ranges merge, and give many syscalls conditions.
  const names = allSyscalls("x86_64").map((s) => s.name).filter((n) => syscallNumber("aarch64", n) !== undefined);
  const allow = names.filter((_, i) => i % 2 === 0).map((n, i) => (i % 3 === 0 ? `${n}(arg2 == ${i}, arg1:64 > 0x1${i}00000000)` : n));
  const err = names.filter((_, i) => i % 2 === 1);
  const p = parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${allow.join(",")}'\nglobal_syscall_error = '${err.join(",")}'\n`, "long.conf");
  const prog = compilePolicy(p, "x86_64", { context: "global" });
  assert.deepEqual(validateProgram(prog), []);
  assert.ok(prog.length > 600, `length ${prog.length}`);
  assert.ok(prog.some((i) => i.code === (BPF_JMP | BPF_JA)), "expected at least one ja");
  const f = compileFilter(prog);
  for (const { name, nr } of allSyscalls("x86_64")) {
    if (syscallNumber("aarch64", name) === undefined) continue;
    for (const args of [[0n, 0n, 0n], [0n, 0x1ffffffffffn, 0n], [0n, 0x1ffffffffffn, 3n]]) {
      const d = data("x86_64", nr, args);
      assert.equal(f(d).ret, actionRet(evaluatePolicy(p, "x86_64", { context: "global" }, d)), name);
    }
  }
  const many = names.map((n, i) => `${n}(arg0 == ${i}, arg1 == ${i}, arg2 == ${i}, arg3:64 == 0x${i}00000001)`);
  const huge = parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${many.join(",")}'\n`, "huge.conf");
  assert.throws(() => compilePolicy(huge, "x86_64", { context: "global" }), (e: unknown) => e instanceof CompileError && /over the kernel's limit of 4096/.test(e.message));
});

// --- property: emulator(compile(policy)) == reference evaluation, on random policies and calls ---

for (const arch of ["x86_64", "aarch64"] as const) {
  test(`property: compiled ${arch} programs agree with the reference evaluator (seeded)`, () => {
    let cases = 0;
    fc.assert(
      fc.property(policyArb, fc.array(callArb(arch), { minLength: 40, maxLength: 40 }), fc.constantFrom(...CONTEXTS), (text, calls, ctx) => {
        const policy = parsePolicyText(text, "random.conf");
        const prog = compilePolicy(policy, arch, ctx);
        assert.deepEqual(validateProgram(prog), []);
        const filter = compileFilter(prog, { skipValidation: true });
        for (const c of calls) {
          const d: SeccompData = { nr: c.nr, arch: c.foreign ? AUDIT_ARCH_I386 : AUDIT_ARCH[arch], instructionPointer: 0n, args: c.args };
          const want = actionRet(evaluatePolicy(policy, arch, ctx, d));
          const got = filter(d).ret;
          if (got !== want) {
            throw new Error(`nr ${c.nr} args ${c.args.map(hex).join(",")}: emulator ${describeSeccompRet(got)}, reference ${describeSeccompRet(want)}\n${text}`);
          }
          cases++;
        }
      }),
      { seed: 20261128, numRuns: 300 },
    );
    assert.ok(cases >= 10000, `${cases} cases`);
  });
}
