import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "../policy/policy.js";
import { clientsNeedServerRow } from "./program.js";

test("client processes need the server's row only when the policy tells them apart", () => {
  const p = (t: string) => parsePolicyText("global_syscall_default = allow\n" + t, "t.conf");
  assert.equal(clientsNeedServerRow(p("archiver_syscall_error = '*, execve'\n"), "x86_64"), false, "backend-type rules only");
  assert.equal(clientsNeedServerRow(p("session_syscall_error = '*, execve'\n"), "x86_64"), true, "sessions unlike walsenders");
  assert.equal(clientsNeedServerRow(p("session_syscall_error = '*, execve'\nwalsender_syscall_error = '*, execve'\n"), "x86_64"), false);
  assert.equal(clientsNeedServerRow(p("session_syscall_allow.alice = '*, execve'\n"), "x86_64"), true, "per-role rules");
  assert.equal(clientsNeedServerRow(p("database_syscall_error.db = '*, execve'\n"), "x86_64"), true, "per-database rules");
  assert.equal(clientsNeedServerRow(p("global_syscall_log = 'execve'\n"), "x86_64"), true, "logged calls say whose they were");
});
