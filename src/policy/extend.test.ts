// Extending a policy (docs/policy.md, "Extending a policy"): in a file that includes another,
// '*' in any list is the included file's value for that setting, and a later file's entry
// takes a syscall out of an earlier file's other list.

import { test } from "node:test";
import assert from "node:assert/strict";
import { loadPolicyFile } from "./policy.js";
import { memorySource } from "./source.js";
import { contextDecisions } from "./decision.js";
import { formatAction } from "./actions.js";
import { syscallNumber } from "../syscalls/index.js";
import { entrySources } from "../render/effective-table.js";

const BASE = "global_syscall_default = 'error'\nglobal_syscall_allow = 'read, write'\nglobal_syscall_log = 'alarm'\nglobal_syscall_kill = 'ptrace, mount'\nsession_syscall_error = '*, execve'\n";

function load(main: string, base = BASE) {
  return loadPolicyFile("/p/mine.conf", memorySource({ "/p/base.conf": base, "/p/mine.conf": main }));
}
function action(p: ReturnType<typeof load>, name: string, context: "global" | "session" = "global"): string {
  const nr = syscallNumber("x86_64", name)!;
  const d = contextDecisions(p, "x86_64", { context }).named.get(nr)?.decision;
  assert.ok(d && d.kind === "leaf", name);
  return formatAction(d.action, p.errorErrno);
}

test("'*' in a global list is the included file's value; the added call leaves the other list, with a note", () => {
  const p = load("include 'base.conf'\nglobal_syscall_log = '*, ptrace'\n");
  assert.equal(action(p, "ptrace"), "log");
  assert.equal(action(p, "alarm"), "log"); // the included log list is kept
  assert.equal(action(p, "mount"), "kill"); // and the rest of its kill list
  assert.equal(action(p, "read"), "allow");
  assert.ok(p.notes.some((n) => n.loc.file === "/p/mine.conf" && n.loc.line === 2 && /ptrace is in the log list here: it leaves the kill list of the global filter set at \/p\/base\.conf:4/.test(n.message)));
  // Sessions inherit the extended global list ('*' in the included session list).
  assert.equal(action(p, "ptrace", "session"), "log");
  assert.equal(action(p, "execve", "session"), "error");
  // Where each entry came from: the included file's line for what '*' kept.
  const src = entrySources(p).filter((e) => e.filter === "global");
  assert.deepEqual(src.find((e) => e.entry === "alarm")?.from, "/p/base.conf:3");
  assert.deepEqual(src.find((e) => e.entry === "ptrace")?.from, "/p/mine.conf:2");
  assert.equal(src.filter((e) => e.entry === "ptrace").length, 1);
});

test("'*' in a session list extends the included session list, which itself holds the global list", () => {
  const p = load("include 'base.conf'\nsession_syscall_error = '*, socket'\n");
  assert.equal(action(p, "execve", "session"), "error");
  assert.equal(action(p, "socket", "session"), "error");
});

test("a list without '*' replaces the included one, with a note; a conflict inside one file is still an error", () => {
  const p = load("include 'base.conf'\nglobal_syscall_log = 'getpid'\n");
  assert.equal(action(p, "getpid"), "log");
  assert.equal(contextDecisions(p, "x86_64", { context: "global" }).named.has(syscallNumber("x86_64", "alarm")!), false);
  assert.ok(p.notes.some((n) => /replaces the list set at \/p\/base\.conf:3; to add to it, begin the list with '\*'/.test(n.message)));
  assert.throws(() => load("include 'base.conf'\nglobal_syscall_log = '*, getpid'\nglobal_syscall_kill = '*, getpid'\n"), /syscall "getpid" is in both the log list .* and the kill list of the global filter/);
});

test("'*' in a global list nothing set before: empty after an include, an error in a file alone", () => {
  const p = load("include 'base.conf'\nglobal_syscall_trap = '*, getpid'\n");
  assert.equal(action(p, "getpid"), "trap");
  assert.throws(() => load("global_syscall_default = 'allow'\nglobal_syscall_log = '*, ptrace'\n"), /"\*" means "the list as set before"/);
});

test("pgseccomp mode keeps '*' = the global list (pgseccomp sees only the last value)", () => {
  const base = "pgseccomp.enabled = on\npgseccomp.global_syscall_default = 'allow'\npgseccomp.global_syscall_error = 'mount'\npgseccomp.session_syscall_error = 'ptrace'\n";
  const p = load("include 'base.conf'\npgseccomp.session_syscall_error = '*, reboot'\n", base);
  assert.equal(action(p, "mount", "session"), "error");
  assert.equal(action(p, "reboot", "session"), "error");
  assert.equal(contextDecisions(p, "x86_64", { context: "session" }).named.get(syscallNumber("x86_64", "ptrace")!)?.decision, undefined);
});
