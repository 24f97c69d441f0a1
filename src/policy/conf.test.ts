import { test } from "node:test";
import assert from "node:assert/strict";
import { readConf } from "./conf.js";
import { memorySource } from "./source.js";
import { PolicyError } from "./errors.js";

const read = (files: Record<string, string>, main = "/p/main.conf") => readConf(main, memorySource(files));

function throwsAt(fn: () => unknown, line: number, column: number, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof PolicyError, `expected PolicyError, got ${String(e)}`);
    assert.equal(e.loc?.line, line, `line of: ${e.message}`);
    assert.equal(e.loc?.column, column, `column of: ${e.message}`);
    assert.match(e.problem, re);
    return true;
  });
}

test("reads name = value lines with comments, optional =, and quoting", () => {
  const c = read({
    "/p/main.conf": [
      "# a comment",
      "seccomp = on  # trailing comment",
      "Global_Syscall_Default log",
      "global_syscall_allow = 'read,write'",
      "x = 'it''s' ",
      "y = 'a\\tb\\'c'",
      "pgseccomp.enabled = true",
      "",
    ].join("\n"),
  });
  assert.deepEqual(
    c.settings.map((s) => [s.name, s.value]),
    [["seccomp", "on"], ["global_syscall_default", "log"], ["global_syscall_allow", "read,write"], ["x", "it's"], ["y", "a\tb'c"], ["pgseccomp.enabled", "true"]],
  );
  assert.deepEqual(c.settings[2]!.valueLoc, { file: "/p/main.conf", line: 4, column: 25 });
});

test("a value may continue on the next line after a bare =", () => {
  const c = read({ "/p/main.conf": "global_syscall_allow =\n'read,write'\nseccomp = on\n" });
  assert.deepEqual(c.settings.map((s) => [s.name, s.value, s.valueLoc.line]), [["global_syscall_allow", "read,write", 2], ["seccomp", "on", 3]]);
});

test("include, include_if_exists and include_dir resolve relative to the including file", () => {
  const c = read({
    "/p/main.conf": "a = 1\ninclude 'sub/one.conf'\ninclude_if_exists 'missing.conf'\ninclude_dir 'd'\nz = 9\n",
    "/p/sub/one.conf": "b = 2\ninclude '../two.conf'\n",
    "/p/two.conf": "c = 3\n",
    "/p/d/20-x.conf": "e = 5\n",
    "/p/d/10-x.conf": "d = 4\n",
    "/p/d/notes.txt": "ignored = 1\n",
  });
  assert.deepEqual(c.settings.map((s) => s.name), ["a", "b", "c", "d", "e", "z"]);
  assert.deepEqual(c.files, ["/p/main.conf", "/p/sub/one.conf", "/p/two.conf", "/p/d/10-x.conf", "/p/d/20-x.conf"]);
});

test("errors carry file, line and column", () => {
  throwsAt(() => read({ "/p/main.conf": "a = 1\nb = 'open\n" }), 2, 5, /unterminated quoted string/);
  throwsAt(() => read({ "/p/main.conf": "a = 1 2\n" }), 1, 7, /unexpected text after the value/);
  throwsAt(() => read({ "/p/main.conf": "\n  = 3\n" }), 2, 3, /syntax error/);
  throwsAt(() => read({ "/p/main.conf": "a =\n" }), 1, 1, /has no value/);
  throwsAt(() => read({ "/p/main.conf": "x = 1\ninclude 'nope.conf'\n" }), 2, 1, /does not exist/);
  throwsAt(() => read({ "/p/main.conf": "include 'b.conf'\n", "/p/b.conf": "\ninclude 'main.conf'\n" }), 2, 1, /include loop/);
});

test("a missing main file is an error without a location", () => {
  assert.throws(() => read({}, "/p/none.conf"), (e: unknown) => e instanceof PolicyError && e.loc === undefined && /does not exist/.test(e.problem));
});
