import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "../policy/policy.js";
import { contextDecisions, decisionFor, type ContextSpec } from "../policy/decision.js";
import { effectiveFilterRows } from "./effective-table.js";
import { syscallNumber } from "../syscalls/index.js";

const rows = (text: string, contexts: ContextSpec[] = [{ context: "global" }, { context: "session" }]) =>
  effectiveFilterRows(parsePolicyText(text, "t.conf"), "x86_64", contexts).map((r) => `${r.context} ${r.syscall} ${r.filter_action}`);

// Expected tables follow pgseccomp's pg_get_seccomp_filter(): the global filter's rules, then the
// session filter overlaid on them, a list whose action is its filter's default adds no rule.

test("pgseccomp mode: no session filter when every session list is '*' or unset and the default is the global one: rows keep global->X, allow reads session->allow", () => {
  // As pgseccomp prints it (test/fixtures/pgseccomp/01, 09): its empty session record (default
  // allow) still overlays the global rows and wins ties.
  assert.deepEqual(rows("pgseccomp.enabled = on\npgseccomp.global_syscall_error = 'execve'\n"), [
    "global <default> global->allow", "global execve global->error",
    "session <default> session->allow", "session execve global->error",
  ]);
  assert.deepEqual(rows("pgseccomp.enabled = on\npgseccomp.global_syscall_default = 'log'\npgseccomp.global_syscall_allow = 'read'\npgseccomp.session_syscall_default = 'log'\n").slice(2), [
    "session <default> global->log", "session read session->allow",
  ]);
  // A session list written out (even as the global one) is a filter of its own.
  assert.deepEqual(rows("pgseccomp.enabled = on\npgseccomp.global_syscall_error = 'execve'\npgseccomp.session_syscall_error = 'execve'\n").slice(2), [
    "session <default> session->allow", "session execve session->error",
  ]);
});

test("pgseccomp mode: entries equal to their filter's default are dropped; syscalls only a session list names have no global row; <default> sorts first", () => {
  const text = `
pgseccomp.enabled = on
pgseccomp.global_syscall_allow = 'close'
pgseccomp.global_syscall_error = 'execve'
pgseccomp.session_syscall_allow = 'execve, read'
pgseccomp.session_syscall_error = 'accept'
`;
  assert.deepEqual(rows(text), [
    "global <default> global->allow", "global execve global->error",
    "session <default> session->allow", "session accept session->error", "session execve global->error",
  ]);
  // The seed's names: every context lists every syscall named, <default> sorts as "default".
  assert.deepEqual(rows(text.replace(/pgseccomp\./g, "").replace("enabled = on", "global_syscall_default = allow")), [
    "global accept global->allow", "global close global->allow", "global <default> global->allow", "global execve global->error", "global read global->allow",
    "session accept session->error", "session close session->allow", "session <default> session->allow", "session execve global->error", "session read session->allow",
  ]);
});

test("pgseccomp mode: a role's missing list is the session's, dropped or not by the role's own default", () => {
  const text = `
pgseccomp.enabled = on
pgseccomp.global_syscall_default = 'allow'
pgseccomp.session_syscall_allow = 'getpid'
pgseccomp.session_roles = 'joe'
pgseccomp.session_syscall_default.joe = 'error'
`;
  assert.deepEqual(rows(text, [{ context: "session" }]), ["session <default> session->allow"]);
  assert.deepEqual(rows(text, [{ context: "session", role: "joe" }]), ["session <default> session->error", "session getpid session->allow"]);
});

test("pgseccomp mode: a role's allow entry equal to its default does not undo the error list it inherits (pgseccomp adds no such rule); a group carve-out stays", () => {
  const text = `
pgseccomp.enabled = on
pgseccomp.session_syscall_error = 'execve'
pgseccomp.session_roles = 'joe'
pgseccomp.session_syscall_allow.joe = 'execve'
`;
  assert.deepEqual(rows(text, [{ context: "session", role: "joe" }]), ["session <default> session->allow", "session execve session->error"]);
  assert.deepEqual(rows(text.replace(/pgseccomp\./g, "").replace("enabled = on", "global_syscall_default = allow"), [{ context: "session", role: "joe" }]), [
    "session <default> session->allow", "session execve session->allow",
  ], "seed names: the explicit entry beats the inherited one");
  const grouped = parsePolicyText("pgseccomp.enabled = on\npgseccomp.global_syscall_kill = '@privileged'\npgseccomp.global_syscall_allow = 'setuid'\n", "g.conf");
  const cd = contextDecisions(grouped, "x86_64", { context: "global" });
  assert.deepEqual(decisionFor(cd, syscallNumber("x86_64", "setuid")!), { kind: "leaf", action: { kind: "allow" }, source: "global" }, "the carve-out stays");
  assert.equal((decisionFor(cd, syscallNumber("x86_64", "chown")!) as { action: { kind: string } }).action.kind, "kill");
});
