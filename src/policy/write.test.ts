import { test } from "node:test";
import assert from "node:assert/strict";
import { readConfText } from "./conf.js";
import { PolicyDraftBuilder, quoteValue, writePolicyText } from "./write.js";
import { assertRoundTrip } from "../../test/support/policy-round-trip.js";

test("quoteValue: quotes doubled, backslashes and control characters escaped, so the value reads back", () => {
  for (const v of ["", "read, write", "it's", "a\\b", "x\ny", "tab\there", "cr\rlf", "'';\\n"]) {
    const text = `v = ${quoteValue(v)}\n`;
    assert.equal(text.split("\n").length, 2, JSON.stringify(v));
    assert.deepEqual(readConfText(text).settings.map((s) => s.value), [v]);
  }
  assert.equal(quoteValue("it's"), "'it''s'");
});

test("writePolicyText: header, comments, empty lines, a commented-out setting and a footer, in file order", () => {
  const d = new PolicyDraftBuilder()
    .comment("first", "", "  indented")
    .set("global_syscall_default", "error")
    .blank()
    .set("global_syscall_allow", "read, write")
    .comment("other arch")
    .set("global_syscall_allow", "openat", { commentedOut: true })
    .blank()
    .comment("the end")
    .draft(["head", ""]);
  assert.equal(
    writePolicyText(d),
    "# head\n#\n\n# first\n#\n#   indented\nglobal_syscall_default = 'error'\n\nglobal_syscall_allow = 'read, write'\n# other arch\n# global_syscall_allow = 'openat'\n\n# the end\n",
  );
  const back = assertRoundTrip(d, "x86_64");
  assert.deepEqual(back.global.entries.map((e) => e.name), ["read", "write"]);
});

test("writePolicyText: a line break in a comment starts another comment line; a name with one is refused", () => {
  const d = new PolicyDraftBuilder().comment("a\nglobal_syscall_default = 'allow'").set("global_syscall_default", "error").draft(["x\r\nglobal_syscall_kill = ''"]);
  const text = writePolicyText(d);
  assert.deepEqual(readConfText(text).settings.map((s) => s.name), ["global_syscall_default"]);
  assert.match(text, /^# global_syscall_default = 'allow'$/m);
  assert.throws(() => writePolicyText({ settings: [{ name: "session_syscall_allow.a\nb", value: "" }] }), /control character/);
});
