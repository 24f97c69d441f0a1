// Conditional entries take only the calls they match: a call that matches no condition of an
// entry is decided by the rest of the policy as if that entry were absent (the inherited and
// group entries, then the default), in every list and every context; the table, the reference
// evaluation and the compiled program say the same.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "./policy.js";
import { contextDecisions, decisionFor, type ContextSpec } from "./decision.js";
import { evaluatePolicy } from "./evaluate.js";
import { describeDecision } from "../render/effective-table.js";
import { actionRet, compilePolicy } from "../compile/compile.js";
import { emulate } from "../bpf/emulator.js";
import { syscallNumber } from "../syscalls/index.js";
import { AUDIT_ARCH } from "../seccomp/index.js";

const nr = (name: string) => syscallNumber("x86_64", name)!;

function shown(text: string, ctx: ContextSpec, name: string): string {
  const p = parsePolicyText(text, "t.conf");
  return describeDecision(decisionFor(contextDecisions(p, "x86_64", ctx), nr(name)), p.errorErrno);
}

/** The reference evaluation and the compiled program agree on a call; returns the action's text. */
function decide(text: string, ctx: ContextSpec, name: string, args: bigint[]): string {
  const p = parsePolicyText(text, "t.conf");
  const data = { nr: nr(name), arch: AUDIT_ARCH.x86_64, instructionPointer: 0n, args: [...args, 0n, 0n, 0n, 0n, 0n, 0n].slice(0, 6) };
  const ref = evaluatePolicy(p, "x86_64", ctx, data);
  const ret = emulate(compilePolicy(p, "x86_64", ctx), data).ret;
  assert.equal(ret >>> 0, actionRet(ref) >>> 0, `${name}(${args}) in ${JSON.stringify(ctx)}: emulator and reference differ`);
  return ref.kind;
}

const README = `
global_syscall_default = 'error'
global_syscall_allow = 'read, write, socket, close'
session_syscall_error = '*, execve, socket(arg0 == 16)'
`;

test("the README's example: '*, execve, socket(arg0 == 16)' denies only netlink sockets in sessions", () => {
  const s: ContextSpec = { context: "session" };
  assert.equal(decide(README, s, "socket", [16n, 3n, 0n]), "error");
  assert.equal(decide(README, s, "socket", [2n, 1n, 0n]), "allow");
  assert.equal(decide(README, s, "socket", [1n, 1n, 0n]), "allow");
  assert.equal(shown(README, s, "socket"), "session->error if arg0 == 0x10; else session->allow");
  // Before: the conditional entry displaced the inherited allow and other families fell to the default.
  assert.doesNotMatch(shown(README, s, "socket"), /else (global|session)->error/);
});

test("the same line in a per-role list, a database overlay and a backend type decides alike", () => {
  const text = `
global_syscall_default = 'error'
global_syscall_allow = 'read, write, socket, close'
session_roles = 'alice'
session_syscall_error.alice = '*, execve, socket(arg0 == 16)'
database_syscall_error.db1 = '*, socket(arg0 == 16)'
checkpointer_syscall_error = '*, socket(arg0 == 16)'
`;
  for (const ctx of [{ context: "session", role: "alice" }, { context: "session", database: "db1" }, { context: "checkpointer" }] as ContextSpec[]) {
    assert.equal(decide(text, ctx, "socket", [16n, 3n, 0n]), "error", JSON.stringify(ctx));
    assert.equal(decide(text, ctx, "socket", [2n, 1n, 0n]), "allow", JSON.stringify(ctx));
  }
  assert.equal(decide(text, { context: "session" }, "socket", [16n, 3n, 0n]), "allow");
});

test("a call no explicit entry matches falls to the group entry, then to the default", () => {
  const text = `
global_syscall_default = 'allow'
global_syscall_kill = '@privileged'
global_syscall_allow = 'setuid(arg0 == 0)'
global_syscall_log = 'getpid(arg0 == 1)'
`;
  const g: ContextSpec = { context: "global" };
  assert.equal(decide(text, g, "setuid", [0n]), "allow");
  assert.equal(decide(text, g, "setuid", [5n]), "kill"); // the group, not the default
  assert.equal(shown(text, g, "setuid"), "global->allow if arg0 == 0; else global->kill");
  assert.equal(decide(text, g, "getpid", [1n]), "log");
  assert.equal(decide(text, g, "getpid", [2n]), "allow"); // no other entry: the default
});

test("in every list: a conditional entry takes its calls and leaves the rest to the inherited list", () => {
  // The session's default denies; each syscall is inherited from global's list of another action.
  const text = `
global_syscall_default = 'allow'
global_syscall_log = 'getpid, getuid, getgid, geteuid, getegid'
session_syscall_default = 'kill'
session_syscall_allow = '*, getpid(arg0 == 1)'
session_syscall_log = '*'
session_syscall_error = '*, getuid(arg0 == 1)'
session_syscall_trap = '*, getgid(arg0 == 1)'
session_syscall_kill = '*, geteuid(arg0 == 1)'
`;
  const s: ContextSpec = { context: "session" };
  const expect: Array<[string, string]> = [["getpid", "log"], ["getuid", "error"], ["getgid", "trap"], ["geteuid", "kill"]];
  for (const [name, matched] of expect) {
    assert.equal(decide(text, s, name, [1n]), matched, `${name}(1)`);
    assert.equal(decide(text, s, name, [2n]), "log", `${name}(2): the inherited log entry, not the session's kill default`);
  }
  assert.equal(decide(text, s, "getegid", [1n]), "log");
  assert.equal(decide(text, s, "mount", []), "kill");
});
