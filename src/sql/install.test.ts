// The install script's rules, read from its text (the attacks on a real server are in
// test/attacks/sql-install.test.ts): nothing in public, nothing created over what someone else
// could have made first, every SECURITY DEFINER function with its search_path pinned, and the
// refusal printed as the client's own lines.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "../policy/policy.js";
import { describeInstallFailure, installSql } from "./install.js";

const policy = parsePolicyText("seccomp = on\nglobal_syscall_default = allow\nsession_syscall_error = '*, execve'\nset_client_filter = on\n", "t.conf");
const scripts = [
  installSql(policy, "x86_64", { schema: "seccomp", policyPath: "/etc/pg_seccomp/t.conf", dataDir: "/srv/pg/data", logPath: "/var/log/pg_seccomp/t.jsonl", serverUid: 999 }),
  installSql(policy, "x86_64", { schema: "seccomp", policyPath: "/etc/pg_seccomp/t.conf" }),
];

test("the script pins search_path first, creates nothing in public and never over an object it has not verified", () => {
  for (const sql of scripts) {
    assert.match(sql, /^(\s*--[^\n]*\n)*set search_path = pg_catalog, pg_temp;\nbegin;/, "the first statement");
    assert.doesNotMatch(sql, /create\s+or\s+replace|if\s+not\s+exists/i);
    assert.doesNotMatch(sql, /\b(create|alter|grant|revoke)\b[^;]*\bpublic\.\w/i, "nothing of ours in public");
    assert.match(sql, /set local role %I/, "the bootstrap superuser owns what is created");
    // The checks come before the first create.
    assert.ok(sql.indexOf("do $check$") < sql.indexOf("create table"), "checked before anything is created");
  }
});

test("every SECURITY DEFINER function sets search_path = pg_catalog, pg_temp and has EXECUTE revoked from PUBLIC", () => {
  for (const sql of scripts) {
    const fns = sql.split(/\ncreate function /).slice(1);
    assert.ok(fns.length >= 7);
    for (const f of fns) {
      const name = /^"[^"]+"\.(\w+)/.exec(f)![1]!;
      const header = f.slice(0, f.indexOf("$fn$"));
      if (/security definer/.test(header)) assert.match(header, /\nset search_path = pg_catalog, pg_temp\n/, name);
      assert.match(sql, new RegExp(`revoke all on function "seccomp"\\.${name}\\([^)]*\\) from public;`), name);
    }
  }
});

test("with a data directory the functions look in root's run-state directory first, then the server's user's", () => {
  const candidates = /candidates constant text\[\] := array\[([^\]]*)\]/.exec(scripts[0]!)![1]!;
  const dirs = [...candidates.matchAll(/'([^']*)'/g)].map((m) => m[1]!.replace(/\/client-[0-9a-f]+-$/, ""));
  assert.equal(dirs[0], "/run/pg_seccomp");
  assert.ok(dirs.includes("/tmp/pg_seccomp-999") || dirs.some((d) => d.includes("999")), dirs.join(" "));
});

test("a refusal is the server's ERROR with detail and hint lines, no psql prefix or CONTEXT", () => {
  const stderr = [
    "psql:<stdin>:107: ERROR:  pg_seccomp: schema seccomp (oid 16390) already exists, owned by mallory",
    "DETAIL:  sql install creates its schema",
    "HINT:  DROP SCHEMA seccomp CASCADE",
    "CONTEXT:  PL/pgSQL function inline_code_block line 12 at RAISE",
  ].join("\n");
  assert.equal(describeInstallFailure(stderr), "schema seccomp (oid 16390) already exists, owned by mallory\npg_seccomp: detail: sql install creates its schema\npg_seccomp: hint: DROP SCHEMA seccomp CASCADE");
  assert.equal(describeInstallFailure("psql: error: connection to server failed\n"), "psql: error: connection to server failed");
});
