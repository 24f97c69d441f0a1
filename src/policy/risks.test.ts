import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { parsePolicyText } from "./policy.js";
import { formatRisk, policyRisks, RISKS } from "./risks.js";

const parse = (text: string) => parsePolicyText(text, "t.conf");
const ids = (text: string, arches: Array<"x86_64" | "aarch64"> = ["x86_64"]) => policyRisks(parse(text), arches).map((r) => r.id);

test("an allow-everything policy has every risk; with all presets only the ones no preset covers remain", () => {
  assert.deepEqual(ids("global_syscall_default = 'allow'\n"), RISKS.map((r) => r.id));
  assert.deepEqual(ids("global_syscall_default = 'allow'\nsyscall_harden = 'all'\n"), ["io_uring", "bpf", "ptrace", "process_vm", "userfaultfd", "fileless_exec"]);
  assert.deepEqual(ids("global_syscall_default = 'log'\nsyscall_harden = 'all, !personality'\n"), ["io_uring", "bpf", "ptrace", "process_vm", "userfaultfd", "fileless_exec", "personality"], "log lets the call run: a risk too");
  assert.deepEqual(ids("global_syscall_default = 'error'\n"), [], "a policy that allows nothing has no risk");
});

test("each risk: which calls, which contexts, which line", () => {
  const text = [
    "global_syscall_default = 'error'",
    "global_syscall_allow = 'clone, memfd_create, socket(arg0 == 1), socket(arg0 == 2), io_uring_setup, io_uring_enter'", // line 2
    "global_syscall_log = 'execve'", // line 3
    "session_syscall_error = '*, io_uring_setup, io_uring_enter'", // line 4
    "postmaster_syscall_error = '*, execve'", // line 5
  ].join("\n");
  const risks = policyRisks(parse(text), ["x86_64", "aarch64"]);
  const byId = new Map(risks.map((r) => [r.id, r]));
  assert.deepEqual([...byId.keys()], ["namespaces", "io_uring", "fileless_exec"], "socket limited by conditions to unix and inet is not a risk");

  const ns = byId.get("namespaces")!;
  assert.deepEqual(ns.calls, ["clone with CLONE_NEWUSER"]);
  assert.equal(ns.everyContext, true);
  assert.deepEqual(ns.locs.map((l) => l.line), [2]);
  assert.deepEqual(ns.arches, ["x86_64", "aarch64"]);
  assert.match(formatRisk(ns), /^namespaces: clone with CLONE_NEWUSER allowed in every context \(t\.conf:2\): a process can create a user namespace .*; add syscall_harden = 'namespaces' \(or 'all'\)$/);

  // An overlay can only restrict: io_uring is allowed where the session's denial does not reach.
  const io = byId.get("io_uring")!;
  assert.equal(io.everyContext, false);
  assert.ok(!io.contexts.includes("session") && !io.contexts.includes("unclassified"), io.contexts.join());
  assert.ok(io.contexts.includes("global") && io.contexts.includes("checkpointer") && io.contexts.includes("postmaster"));
  assert.deepEqual(io.calls, ["io_uring_setup", "io_uring_enter"]);
  assert.deepEqual(io.locs.map((l) => l.line), [2]);

  const exec = byId.get("fileless_exec")!;
  assert.ok(!exec.contexts.includes("postmaster") && exec.contexts.includes("session"), exec.contexts.join());
  assert.deepEqual(exec.calls, ["memfd_create", "execve"]);
  assert.deepEqual(exec.locs.map((l) => l.line).sort(), [2, 3], "log counts as allowed: the call runs");
  assert.match(formatRisk(exec), /^fileless_exec: memfd_create, execve allowed in global, autovacuum_launcher, .* and \d+ more \(t\.conf:2, t\.conf:3\)/);
});

test("conditions and presets that deny the risky form silence the warning", () => {
  // clone limited by hand to flags without CLONE_NEWUSER... but clone3 is still allowed.
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'clone(arg0 & 0x7e028080 == 0), clone3'\n"), ["namespaces"]);
  assert.deepEqual(policyRisks(parse("global_syscall_default = 'error'\nglobal_syscall_allow = 'clone(arg0 & 0x7e028080 == 0), clone3'\n"), ["x86_64"])[0]!.calls, ["clone3 (its flags cannot be checked)"]);
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'clone(arg0 & 0x7e028080 == 0), clone3:ENOSYS'\n".replace("clone3:ENOSYS", "read")), []);
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'clone, clone3, unshare, setns'\nsyscall_harden = 'namespaces'\n"), []);
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'personality(arg0 == 0xffffffff)'\n"), []);
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'personality'\n"), ["personality"]);
  assert.deepEqual(ids("global_syscall_default = 'error'\nglobal_syscall_allow = 'ioctl, fchmod'\n"), ["suid_sgid", "tiocsti"]);
  // A risk in one context only: the postmaster may do what sessions may not, and the reverse.
  const r = policyRisks(parse("global_syscall_default = 'error'\nglobal_syscall_allow = 'ptrace'\nsession_syscall_kill = '*, ptrace'\npostmaster_syscall_error = '*, ptrace'\n"), ["x86_64"]);
  assert.equal(r[0]!.id, "ptrace");
  assert.ok(!r[0]!.contexts.includes("session") && !r[0]!.contexts.includes("postmaster") && r[0]!.contexts.includes("checkpointer"));
  assert.equal(r[0]!.everyContext, false);
});

test("the starter profile: presets on, only the fileless-exec risk is left (it allows memfd_create and execve)", () => {
  const root = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
  const text = readFileSync(resolve(root, "profiles/postgresql-15-x86_64.conf"), "utf8");
  assert.match(text, /^syscall_harden = 'all'$/m);
  assert.deepEqual(ids(text), ["fileless_exec"]);
  assert.deepEqual(ids(text.replace(/^syscall_harden = .*$/m, "")), ["namespaces", "fileless_exec", "address_families", "suid_sgid", "tiocsti"]);
});
