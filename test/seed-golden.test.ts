// The seed's example configuration must give exactly the table the seed shows for
// `select * from pg_get_seccomp_filter() order by 4,1;` (170 rows), in the same order.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { loadPolicyFile } from "../src/policy/policy.js";
import { effectiveFilterRows } from "../src/render/effective-table.js";
import { repoPath } from "./support/paths.js";

function seedRows(): Array<{ syscall: string; syscallnum: number; filter_action: string; context: string }> {
  const lines = readFileSync(repoPath("test/fixtures/seed-pg_get_seccomp_filter.txt"), "utf8").split("\n");
  return lines
    .filter((l) => / \| /.test(l) && !l.startsWith("syscall |"))
    .map((l) => {
      const [syscall, num, action, context] = l.split("|").map((s) => s.trim());
      return { syscall: syscall!, syscallnum: Number(num), filter_action: action!, context: context! };
    });
}

test("show on the seed's configuration equals the seed's 170-row table, row for row", () => {
  const expected = seedRows();
  assert.equal(expected.length, 170);
  const policy = loadPolicyFile(repoPath("examples/seed.conf"));
  const rows = effectiveFilterRows(policy, "x86_64", [{ context: "global" }, { context: "session" }]);
  assert.deepEqual(rows, expected);
});

test("the CLI prints the same table as CSV with a header, and as a psql table with (170 rows)", () => {
  const bin = repoPath("dist/src/cli/main.js");
  const csv = execFileSync(process.execPath, [bin, "show", repoPath("examples/seed.conf"), "--format", "csv", "--arch", "x86_64"], { encoding: "utf8" });
  const lines = csv.trimEnd().split("\n");
  assert.equal(lines[0], "syscall,syscallnum,filter_action,context");
  assert.equal(lines.length, 171);
  assert.deepEqual(lines.slice(1), seedRows().map((r) => `${r.syscall},${r.syscallnum},${r.filter_action},${r.context}`));
  const table = execFileSync(process.execPath, [bin, "show", repoPath("examples/seed.conf"), "--arch", "x86_64"], { encoding: "utf8" });
  assert.match(table, /^\s+syscall\s+\| syscallnum \| filter_action\s+\| context\n-+\+/);
  assert.match(table, /\n \<default\>\s+\|\s+-1 \| global->log\s+\| global\n/);
  assert.match(table, /\(170 rows\)\n$/);
});
