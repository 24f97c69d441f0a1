// Huge policies get one clear file:line message with a hint, quickly: never a stack overflow,
// an internal error or minutes of CPU. Normal policies are far from every cap.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePolicyText } from "./policy.js";
import { PolicyError } from "./errors.js";
import { contextKey, policyContexts } from "./decision.js";
import { compilePolicy, CompileError } from "../compile/compile.js";
import { compose } from "../compile/compose.js";
import { MAX_ENTRY_CONDITIONS, MAX_LIST_ENTRIES } from "./entries.js";

const conds = (n: number, from = 0, syscall = "read") => Array.from({ length: n }, (_, i) => `${syscall}(arg0 == ${from + i})`).join(", ");

/** Asserts `f` throws a PolicyError at `line` whose problem matches `re` and that has a hint, within `ms`. */
function throwsAt(f: () => unknown, line: number, re: RegExp, ms = 15_000): PolicyError {
  const started = Date.now();
  let err: unknown;
  try {
    f();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof PolicyError, `expected a PolicyError, got ${String(err)}`);
  assert.equal(err.loc?.line, line, err.message);
  assert.match(err.problem, re);
  assert.ok(err.hint, "a hint");
  assert.ok(Date.now() - started < ms, `took ${Date.now() - started} ms`);
  return err;
}

test("a list of 1,000,000 entries is refused at the entry past the cap", () => {
  const names = Array.from({ length: 1_000_000 }, () => "read").join(", ");
  throwsAt(() => parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${names}'\n`, "big.conf"), 2, /more than 4096 entries/);
  throwsAt(() => parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${conds(1_000_000)}'\n`, "big.conf"), 2, /more than 4096 entries/);
  // At the cap the list is read (and duplicates collapse).
  const at = Array.from({ length: MAX_LIST_ENTRIES }, () => "read").join(", ");
  const p = parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${at}'\n`, "at.conf");
  assert.ok(compilePolicy(p, "x86_64", { context: "global" }).length < 100);
});

test("one entry with too many conditions, and too many conditional entries for one syscall, are refused where they are written", () => {
  const many = Array.from({ length: MAX_ENTRY_CONDITIONS + 1 }, (_, i) => `arg0 != ${i}`).join(", ");
  throwsAt(() => parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = 'read(${many})'\n`, "c.conf"), 2, /65 argument conditions/);
  const split = `global_syscall_default = kill\nglobal_syscall_allow = '${conds(800)}'\nglobal_syscall_error = '${conds(800, 10_000)}'\n`;
  throwsAt(() => parsePolicyText(split, "c.conf"), 3, /more than 1024 entries with argument conditions for "read"/);
});

test("conditions that multiply when filters stack give a located error quickly, naming the syscall", () => {
  const text =
    `global_syscall_default = allow\nglobal_syscall_error = '${conds(300)}'\n` +
    `session_syscall_default = allow\nsession_syscall_kill = '${conds(300, 5000)}'\n`;
  const p = parsePolicyText(text, "stack.conf");
  assert.ok(compilePolicy(p, "x86_64", { context: "global" }).length < 4096);
  const e = throwsAt(() => compilePolicy(p, "x86_64", { context: "session" }), 2, /program for session on x86_64 would have \d+ instructions.*"read" alone has \d+ argument tests/);
  assert.ok(e instanceof CompileError);
});

test("a program over 4096 instructions is a CompileError at the heaviest syscall's conditions", () => {
  const text = `global_syscall_default = allow\nglobal_syscall_error = 'write, ${["read", "close", "openat", "fstat", "lseek"].map((s, i) => conds(400 + i, 0, s)).join(", ")}'\n`;
  const p = parsePolicyText(text, "many.conf");
  const e = throwsAt(() => compilePolicy(p, "x86_64", { context: "global" }), 2, /would have \d+ instructions, over the kernel's limit of 4096 \("lseek" alone has 404 argument tests\)/);
  assert.ok(e instanceof CompileError);
  assert.equal(e.loc?.column, text.split("\n")[1]!.indexOf("lseek(") + 1);
  // The launcher's programs fail with a located message too (here already when the session
  // context stacks global's conditions with the session filter's inherited copy).
  assert.throws(() => compose(p, "x86_64"), (x: unknown) => x instanceof PolicyError && x.loc?.line === 2 && /4096/.test(x.message));
});

test("conditional entries on one syscall: inherited copies do not multiply; different filters' conditions do, and are refused quickly with the stacking message", () => {
  // A session filter that inherits global's list with '*' acts exactly like it: stacking keeps
  // one copy, so every context compiles what global compiles.
  const cap = parsePolicyText(`global_syscall_default = kill\nglobal_syscall_allow = '${conds(1024)}'\n`, "cap.conf");
  for (const c of policyContexts(cap)) assert.ok(compilePolicy(cap, "x86_64", c).length <= 4096, contextKey(c));
  // Two filters with conditions of their own on one syscall multiply (the trees are not pruned along a path).
  const two = parsePolicyText(
    `global_syscall_default = kill\nglobal_syscall_allow = '${conds(600)}'\nsession_syscall_allow = '${conds(600, 1000)}'\n`, "two.conf");
  assert.ok(compilePolicy(two, "x86_64", { context: "global" }).length <= 4096);
  throwsAt(() => compilePolicy(two, "x86_64", { context: "session" }), 2, /"read" in the session context are too many to combine/);
});

test("pg_seccomp check on a huge policy: exit 1, file:line:column and a hint, no internal error", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-limits-"));
  const file = join(dir, "huge.conf");
  writeFileSync(file, `global_syscall_default = kill\nglobal_syscall_allow = '${conds(200_000)}'\n`);
  const bin = new URL("../cli/main.js", import.meta.url).pathname;
  const r = spawnSync(process.execPath, [bin, "check", file], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^pg_seccomp: error: ${file.replace(/[.]/g, "\\.")}:2:\\d+: the list has more than 4096 entries\npg_seccomp: hint: `));
  assert.doesNotMatch(r.stderr, /internal error|at .*\.js/);
});
