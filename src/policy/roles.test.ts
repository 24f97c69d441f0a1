// session_roles and per-role settings read as PostgreSQL and pgseccomp read them: unquoted names
// fold to lower case, quoted names keep their case; a role created as "Alice" can get its own
// settings; a setting that can never apply says so.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "./policy.js";
import { splitIdentifierString } from "./identifiers.js";
import { PolicyError } from "./errors.js";

test("splitIdentifierString: folding, quotes, blanks, errors", () => {
  assert.deepEqual(splitIdentifierString(' Alice , "Bob", "a""b",c_d ')?.map((i) => i.name), ["alice", "Bob", 'a"b', "c_d"]);
  assert.deepEqual(splitIdentifierString(""), []);
  assert.deepEqual(splitIdentifierString("  "), []);
  for (const bad of ["a,", ",a", "a,,b", '"a', '""', "a b", '"a"b']) assert.equal(splitIdentifierString(bad), null, bad);
  assert.equal(splitIdentifierString("x".repeat(70))![0]!.name.length, 63);
});

const base = "global_syscall_default = allow\nglobal_syscall_allow = 'execve'\nsession_syscall_error = '*, execve'\n";

test("session_roles: quoted names keep their case; a quoted suffix gives a role created as \"Alice\" its own settings", () => {
  const p = parsePolicyText(base + `session_roles = '"Alice", Bob'\nsession_syscall_allow."Alice" = '*, execve'\nsession_syscall_allow.bob = '*, execve'\n`);
  assert.deepEqual([...p.roles.keys()].sort(), ["Alice", "bob"]);
  assert.ok(p.roles.get("Alice")!.entries.some((e) => e.name === "execve" && e.action.kind === "allow" && !e.inheritedFrom));
  assert.equal(p.notes.length, 0, p.notes.map((n) => n.message).join("\n"));
});

test("an unquoted suffix names the folded role; when it can never apply, a note says so and what to write", () => {
  const p = parsePolicyText(base + `session_roles = '"Alice"'\nsession_syscall_allow.Alice = '*, execve'\n`);
  assert.deepEqual([...p.roles.keys()], ["Alice"]);
  assert.ok(!p.roles.get("Alice")!.entries.some((e) => e.name === "execve" && e.action.kind === "allow" && !e.inheritedFrom));
  const text = p.notes.map((n) => n.message).join("\n");
  assert.match(text, /names role "alice": unquoted names fold to lower case/);
  assert.match(text, /can never apply: session_roles \("Alice"\) does not list role "alice".*write session_syscall_allow\."Alice"/);
  assert.doesNotMatch(text, /as pgseccomp does/);
});

test("without session_roles every role with settings gets them (seed names); with pgseccomp names they are ignored, as pgseccomp does", () => {
  const seed = parsePolicyText(base + "session_syscall_allow.alice = '*, execve'\n");
  assert.deepEqual([...seed.roles.keys()], ["alice"]);
  const compat = parsePolicyText(base.replace(/^/gm, "pgseccomp.").replace(/pgseccomp\.$/, "") + "pgseccomp.enabled = on\nsession_syscall_allow.alice = '*, execve'\n");
  assert.equal(compat.compat, "pgseccomp");
  assert.deepEqual([...compat.roles.keys()], []);
  assert.match(compat.notes.map((n) => n.message).join("\n"), /can never apply: pgseccomp reads per-role settings only for the roles pgseccomp.session_roles lists/);
});

test("compat: a listed role matches its settings ignoring case, as pgseccomp's GUC lookup does", () => {
  const p = parsePolicyText(`compat = pgseccomp\nseccomp = on\nglobal_syscall_default = allow\nsession_roles = '"Alice"'\nsession_syscall_allow.alice = 'read'\nsession_syscall_default.alice = 'error'\n`);
  assert.deepEqual([...p.roles.keys()], ["Alice"]);
  assert.equal(p.roles.get("Alice")!.defaultAction.kind, "error");
});

test("compat: defaults as pgseccomp: off unless enabled, global and session defaults allow", () => {
  const p = parsePolicyText(`pgseccomp.global_syscall_error = 'ptrace'\npgseccomp.session_syscall_allow = 'read'\n`);
  assert.equal(p.enabled, false);
  assert.equal(p.global.defaultAction.kind, "allow");
  assert.equal(p.session.defaultAction.kind, "allow");
  const seed = parsePolicyText(`global_syscall_default = error\nsession_syscall_allow = 'read'\n`);
  assert.equal(seed.enabled, true);
  assert.equal(seed.session.defaultAction.kind, "error");
  assert.throws(() => parsePolicyText(`global_syscall_error = 'ptrace'\n`), /global_syscall_default is not set/);
});

test("compat: a role default pgseccomp would ignore is refused, saying so", () => {
  assert.throws(
    () => parsePolicyText(`pgseccomp.enabled = on\nsession_roles = 'alice'\nsession_syscall_default.alice = 'LOG'\n`),
    (e: unknown) => e instanceof PolicyError && /pgseccomp would ignore this role default and use the session's/.test(e.message),
  );
  // The main defaults are enums, which PostgreSQL reads ignoring case.
  assert.equal(parsePolicyText(`pgseccomp.enabled = on\npgseccomp.global_syscall_default = 'LOG'\n`).global.defaultAction.kind, "log");
});
