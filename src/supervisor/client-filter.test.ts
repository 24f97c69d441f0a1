import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "../policy/policy.js";
import { effectiveFilterRows } from "../render/effective-table.js";
import { clientFilterSpec } from "./client-filter.js";

const execveRow = (text: string) => {
  const policy = parsePolicyText(text, "c.conf");
  const client = clientFilterSpec(policy, policy.session, { default: null, allow: "execve", log: null, error: null, kill: null });
  return effectiveFilterRows(policy, "x86_64", [{ context: "session" }], { client }).find((r) => r.syscall === "execve")?.filter_action;
};

test("set_client_filter in pgseccomp mode: a request list whose action is the client default adds no rule, so the session's error list it inherits labels the row", () => {
  assert.equal(execveRow("pgseccomp.enabled = on\npgseccomp.session_syscall_error = 'execve'\n"), "client->error");
  // Seed names: the request's allow entry overrides the inherited error in the client filter; the session filter still denies.
  assert.equal(execveRow("global_syscall_default = allow\nsession_syscall_error = 'execve'\n"), "session->error");
});
