// What CrunchyData/pgseccomp's own seccomp_filter() printed for each policy in
// test/fixtures/pgseccomp/ (built from its source, loaded as shared_preload_libraries in a
// throwaway cluster, queried as each role; the header of each file says which commit and
// PostgreSQL) must be what `pg_seccomp show --format csv --role R` prints for that policy, row for
// row. So CI checks the compatibility without building pgseccomp. A role the header marks
// "differs for" is a documented difference ('*, names' lists, which pgseccomp refuses): there
// the tables must still differ, so a stale mark cannot hide a change.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { loadPolicyFile } from "../src/policy/policy.js";
import { effectiveFilterRows, FILTER_COLUMNS } from "../src/render/effective-table.js";
import { csvTable } from "../src/render/format.js";
import { contextOf } from "../src/cli/options.js";
import { repoPath } from "./support/paths.js";

interface OracleFixture {
  file: string;
  policy: string;
  /** Role name -> pgseccomp's CSV lines (no header), or its FATAL line. */
  tables: Map<string, string[]>;
  differs: Set<string>;
}

function readFixture(file: string): OracleFixture {
  const text = readFileSync(file, "utf8");
  const differs = new Set<string>();
  const tables = new Map<string, string[]>();
  const policy: string[] = [];
  let section: string[] | undefined;
  for (const line of text.split("\n")) {
    const d = /^# differs for ([^:]+):/.exec(line);
    if (d) for (const r of d[1]!.split(",")) differs.add(r.trim());
    if (line.startsWith("#") && section === undefined) continue;
    if (line === "-- policy") section = policy;
    else if (line.startsWith("-- role ")) tables.set(line.slice(8), (section = []));
    else if (section && line !== "") section.push(line);
  }
  return { file, policy: policy.join("\n") + "\n", tables, differs };
}

const DIR = repoPath("test/fixtures/pgseccomp");
const FIXTURES = readdirSync(DIR).filter((f) => f.endsWith(".txt")).sort().map((f) => readFixture(join(DIR, f)));

test("pgseccomp oracle: the fixtures are there and each has a policy and tables", () => {
  assert.ok(FIXTURES.length >= 9, `${FIXTURES.length} fixtures`);
  for (const f of FIXTURES) {
    assert.match(f.policy, /pgseccomp\.enabled = on/, f.file);
    assert.ok(f.tables.size >= 4, f.file);
  }
});

test("pgseccomp oracle: show --format csv --role R prints pgseccomp's seccomp_filter() for every role and policy", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgs-oracle-"));
  let agree = 0;
  let total = 0;
  try {
    for (const f of FIXTURES) {
      const path = join(dir, "policy.conf");
      writeFileSync(path, f.policy);
      const policy = loadPolicyFile(path);
      for (const [role, expected] of f.tables) {
        total++;
        // As `show` builds it: the global context, then the session context of --role.
        const opts = { context: "session", ...(role === "postgres" ? {} : { role }) };
        const rows = effectiveFilterRows(policy, "x86_64", [{ context: "global" }, contextOf(opts, policy)]);
        const ours = csvTable(FILTER_COLUMNS, rows as never).trimEnd().split("\n").slice(1);
        const label = `${f.file} / ${role}`;
        if (f.differs.has(role)) {
          assert.notDeepEqual(ours, expected, `${label} is marked "differs" but agrees: drop the mark`);
        } else {
          assert.deepEqual(ours, expected, label);
          agree++;
        }
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  // 31 of 36 tables agree; the other 5 are the documented '*, names' difference.
  assert.equal(`${agree} of ${total}`, "31 of 36");
});
