// The commands docs/profiles.md gives for regenerating the bundled profiles without a server run
// (`build.js --learned-from`) and for their sizes table (`sizes.js`), run as a user would: the
// result must be the bundled file (up to the build date in its comments), and the table the one
// the docs print. Debian's 15 only on x86_64 (its analysis is cached per file after the first run).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "./support/paths.js";

const script = (name: string) => repoPath(`dist/scripts/profile/${name}.js`);
const dated = (t: string) => t.replace(/\b\d{4}-\d{2}-\d{2}\b/g, "YYYY-MM-DD");
const skip = existsSync("/usr/lib/postgresql/15/bin/postgres") ? false : "needs Debian's PostgreSQL 15";

test("build.js --major 15 --learned-from, in place as docs/profiles.md runs it, writes the bundled profile again", { skip, timeout: 300_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-build-"));
  try {
    // Rebuilt in place (as docs/profiles.md does it), on a copy: --learned-from the file it writes.
    const out = join(dir, "postgresql-15-x86_64.conf");
    copyFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), out);
    const r = spawnSync(process.execPath, [script("build"), "--major", "15", "--learned-from", out, "--out", out], { cwd: repoPath("."), encoding: "utf8", timeout: 280_000 });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr + r.stdout, /wrote .*postgresql-15-x86_64\.conf: 147 allowed \(86 seen, 61 floor only\), \d+ static only \(log\)/);
    assert.equal(dated(readFileSync(out, "utf8")), dated(readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8")), "regenerate the bundled profiles (docs/profiles.md) after changing the builder");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("sizes.js prints the table docs/profiles.md shows", () => {
  const r = spawnSync(process.execPath, [script("sizes")], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  const docs = readFileSync(repoPath("docs/profiles.md"), "utf8");
  const row = (l: string) => l.split("|").slice(1, -1).map((c) => c.trim());
  const docRows = new Map(docs.split("\n").filter((l) => /^\| postgresql-\d+-(x86_64|aarch64)\.conf \|/.test(l)).map((l) => [row(l)[0]!, row(l)]));
  const printed = r.stdout.split("\n").filter((l) => /^\| postgresql-/.test(l)).map(row);
  assert.ok(printed.length >= 9, r.stdout);
  for (const p of printed) assert.deepEqual(docRows.get(p[0]!), p, `docs/profiles.md's row for ${p[0]} (node dist/scripts/profile/sizes.js)`);
});
