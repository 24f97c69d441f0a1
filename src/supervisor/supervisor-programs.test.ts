// The supervisor decides a program's calls (from its allowed execve on, and its children's) in
// its parent's program context (program_syscall_*.<parent>); the execve itself in the parent's.

import { test } from "node:test";
import assert from "node:assert/strict";
import { compileFilter } from "../bpf/emulator.js";
import { AUDIT_ARCH_X86_64 } from "../seccomp/index.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import { parsePolicyText } from "../policy/policy.js";
import { syscallNumber } from "../syscalls/index.js";
import { supervisorProgram } from "../compile/compose.js";
import { SupervisorCore, type SupervisorIO } from "./supervisor-core.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { programContextFor } from "../classify/classify.js";

const arch = "x86_64" as const;
const EXECVE = syscallNumber(arch, "execve")!;
const UNAME = syscallNumber(arch, "uname")!;
const PM = 100;

test("a program's calls are decided in its parent's program context; its execve in the parent's", () => {
  const policy = parsePolicyText("global_syscall_default = allow\narchiver_syscall_error = '*, uname'\nprogram_syscall_allow.archiver = '*, uname'\n", "p.conf");
  const procs = new Map<number, { ppid: number; start: string }>([[200, { ppid: PM, start: "50" }], [300, { ppid: 200, start: "60" }], [301, { ppid: 300, start: "61" }]]);
  const answers = new Map<bigint, { continue: true } | { errno: number }>();
  const emitted: ViolationEvent[] = [];
  const io: SupervisorIO = {
    now: () => 1_000_000, stat: (pid) => procs.get(pid), threadGroup: (tid) => tid, status: () => "", title: () => "", idValid: () => true,
    respond: (id, a) => answers.set(id, a), kill: () => undefined, spawnsShell: () => false,
    requestClassification: () => undefined, requestStatement: () => undefined, emit: (e) => emitted.push(e), note: () => undefined,
  };
  const decisionsFor = (ctx: ContextSpec) => compileFilter(supervisorProgram(policy, arch, ctx));
  const core = new SupervisorCore(PM, decisionsFor, { pending: false, stagePid: PM, execveNr: EXECVE }, arch, io);
  core.programContext = (parent) => programContextFor(policy, parent);
  let id = 0n;
  const call = (pid: number, nr: number) => {
    core.onNotification({ id: ++id, pid, data: { nr, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] } });
    return id;
  };
  const first = call(200, UNAME);
  core.onClassified(200, "50", { ctx: { context: "archiver" }, pin: true });
  assert.deepEqual(answers.get(first), { errno: 13 }, "the archiver itself may not");
  // The forked child before its exec runs the archiver's code: the archiver's context.
  assert.deepEqual(answers.get(call(300, UNAME)), { errno: 13 });
  assert.deepEqual(answers.get(call(300, EXECVE)), { continue: true });
  // From its exec on, and for what it starts before their own exec: the program context.
  assert.deepEqual(answers.get(call(300, UNAME)), { continue: true });
  assert.deepEqual(answers.get(call(301, UNAME)), { continue: true });
  assert.ok(emitted.some((e) => e.pid === 300 && e.syscall === "uname" && e.context === "archiver"));
  // The same pid as a new process (another start time) is not a program.
  procs.set(300, { ppid: 200, start: "99" });
  assert.deepEqual(answers.get(call(300, UNAME)), { errno: 13 });
});
