// The terminate action in the supervisor (docs/policy.md, "Ending a session, not the server"):
// the call fails with its errno, then the session's backend gets SIGTERM; in other contexts the
// errno alone. And what compose and the policy make of it: routed, ranked between error and trap.

import { test } from "node:test";
import assert from "node:assert/strict";
import { compileFilter } from "../bpf/emulator.js";
import { AUDIT_ARCH_X86_64, seccompActionOf } from "../seccomp/index.js";
import { contextDecisions, contextKey, type ContextSpec } from "../policy/decision.js";
import { parsePolicyText } from "../policy/policy.js";
import { evaluatePolicy } from "../policy/evaluate.js";
import { formatAction, moreRestrictive, parseAction } from "../policy/actions.js";
import { syscallNumber } from "../syscalls/index.js";
import { errnoNumber } from "../syscalls/errno.js";
import { compose, supervisorProgram } from "../compile/compose.js";
import { compilePolicy } from "../compile/compile.js";
import { effectiveFilterRows } from "../render/effective-table.js";
import { DEFAULT_LIMITS, SupervisorCore, type SupervisorIO } from "./supervisor-core.js";
import type { ViolationEvent } from "../host/violation-event.js";

const arch = "x86_64" as const;
const EXECVE = syscallNumber(arch, "execve")!;
const MOUNT = syscallNumber(arch, "mount")!;
const policy = parsePolicyText("global_syscall_default = allow\nsession_syscall_terminate = 'execve, mount:EPERM'\nglobal_syscall_kill = 'reboot'\n", "t.conf");
const PM = 100;

function harness() {
  const procs = new Map<number, { ppid: number; start: string }>([[PM, { ppid: 1, start: "1" }]]);
  const answers = new Map<bigint, { continue: true } | { errno: number }>();
  const order: string[] = [];
  const emitted: ViolationEvent[] = [];
  const io: SupervisorIO = {
    now: () => 1_000_000, threadGroup: (tid) => tid,
    stat: (pid) => procs.get(pid),
    status: () => "Threads:\t1\nSigBlk:\t0\nSigIgn:\t0\nSigCgt:\t0\n",
    title: (pid) => `title of ${pid}`,
    idValid: () => true,
    respond: (id, a) => {
      answers.set(id, a);
      order.push(`respond ${id}`);
    },
    kill: (pid, sig) => void order.push(`${sig} ${pid}`),
    spawnsShell: () => false,
    requestClassification: () => {},
    requestStatement: () => {},
    emit: (e) => emitted.push(e),
    note: () => {},
  };
  const decisionsFor = (ctx: ContextSpec) => compileFilter(supervisorProgram(policy, arch, ctx));
  const core = new SupervisorCore(PM, decisionsFor, { pending: false, stagePid: PM, execveNr: EXECVE }, arch, io, { ...DEFAULT_LIMITS, statementsPerSecond: 0 });
  let id = 0n;
  const call = (pid: number, nr: number) => {
    core.onNotification({ id: ++id, pid, data: { nr, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] } });
    return id;
  };
  return { core, procs, answers, order, emitted, call };
}

test("terminate in a session: the call fails with its errno first, then the backend gets SIGTERM", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "5" });
  h.procs.set(300, { ppid: 200, start: "6" }); // a program the backend started (COPY TO PROGRAM's sh)
  h.core.onClassified(200, "5", { ctx: { context: "session" }, pin: true });
  const a = h.call(200, MOUNT);
  assert.deepEqual(h.answers.get(a), { errno: errnoNumber("EPERM") });
  const b = h.call(300, EXECVE);
  assert.deepEqual(h.answers.get(b), { errno: policy.errorErrno });
  assert.deepEqual(h.order, [`respond ${a}`, "SIGTERM 200", `respond ${b}`, "SIGTERM 200"], "answer, then SIGTERM the session's backend");
  assert.equal(h.emitted[0]?.action, "terminate");
  assert.equal(h.emitted[0]?.signal, "SIGTERM");
  assert.equal(h.emitted[1]?.terminated, 200);
});

test("terminate outside a session (an auxiliary process, the postmaster): the errno alone, no signal", () => {
  const h = harness();
  const pol = parsePolicyText("global_syscall_default = allow\nglobal_syscall_terminate = 'mount'\n", "g.conf");
  const core = new SupervisorCore(PM, (ctx) => compileFilter(supervisorProgram(pol, arch, ctx)), { pending: false, stagePid: PM, execveNr: EXECVE }, arch, {
    now: () => 0, threadGroup: (tid) => tid, stat: (pid) => h.procs.get(pid), status: () => "", title: () => "", idValid: () => true,
    respond: (id, a) => void h.answers.set(id, a), kill: (pid, sig) => void h.order.push(`${sig} ${pid}`), spawnsShell: () => false,
    requestClassification: () => {}, requestStatement: () => {}, emit: () => {}, note: () => {},
  });
  h.procs.set(201, { ppid: PM, start: "7" });
  core.onClassified(201, "7", { ctx: { context: "checkpointer" }, pin: true });
  core.onNotification({ id: 1n, pid: 201, data: { nr: MOUNT, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] } });
  core.onNotification({ id: 2n, pid: PM, data: { nr: MOUNT, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] } });
  assert.deepEqual(h.answers.get(1n), { errno: pol.errorErrno });
  assert.deepEqual(h.answers.get(2n), { errno: pol.errorErrno });
  assert.deepEqual(h.order, []);
});

test("terminate: between error and trap in precedence; routed to the supervisor; an errno in the kernel and in the table's words", () => {
  const err = parseAction("error", 13, undefined);
  const term = parseAction("terminate:EPERM", 13, undefined);
  assert.equal(moreRestrictive(err, term), term);
  assert.equal(moreRestrictive(term, { kind: "trap" }).kind, "trap");
  assert.equal(moreRestrictive({ kind: "kill" }, term).kind, "kill");
  assert.equal(formatAction(term, 13), "terminate:EPERM");
  // The global error list and a session terminate list: terminate wins in sessions.
  const p = parsePolicyText("global_syscall_default = allow\nglobal_syscall_error = 'mount'\nsession_syscall_terminate = 'mount'\n", "p.conf");
  const data = { nr: MOUNT, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] };
  assert.equal(evaluatePolicy(p, arch, { context: "session" }, data).kind, "terminate");
  assert.equal(evaluatePolicy(p, arch, { context: "global" }, data).kind, "error");
  const c = compose(p, arch);
  assert.ok(c.routed.some((r) => r.name === "mount"), "mount goes to the supervisor");
  // In a program the kernel runs on its own (compile, export), terminate is the errno.
  const alone = compileFilter(compilePolicy(p, arch, { context: "session" }));
  assert.equal(seccompActionOf(alone(data).ret)?.name, "ERRNO");
  const rows = effectiveFilterRows(p, arch, [{ context: "session" }]);
  assert.equal(rows.find((r) => r.syscall === "mount")?.filter_action, "session->terminate");
  assert.equal(contextDecisions(p, arch, { context: "session" }).named.get(MOUNT)?.decision.kind, "leaf");
  assert.ok(contextKey({ context: "session" }));
});
