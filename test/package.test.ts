// What `npm publish` would ship: the built CLI and its modules, profiles and docs, never tests,
// their fixtures and helpers, or benchmarks (they compile into dist/ beside the sources).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { repoPath } from "./support/paths.js";

test("npm pack lists no test, fixture, test helper or benchmark file", () => {
  // --ignore-scripts: list what is there, without `prepare` rebuilding dist/ under the suite.
  const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: repoPath("."), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  assert.ok(files.includes("dist/src/cli/main.js"), `the CLI is packed:\n${files.join("\n")}`);
  assert.ok(files.includes("dist/src/compile/compose.js"));
  assert.ok(files.includes("docs/man/pg_seccomp.1"), "the man page is packed (package.json's man installs it)");
  const unwanted = files.filter((f) => /\.test\.(js|ts|d\.ts)(\.map)?$|(^|\/)(test|tests|fixtures|support|bench)\//.test(f));
  assert.deepEqual(unwanted, []);
});
