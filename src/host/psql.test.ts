// The one-shot psql runner: its flags, and what a failure looks like (a stand-in psql, a shell script).

import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { psqlArgs, runPsql, runPsqlSync } from "./psql.js";

test("psql's arguments: no psqlrc, tuples only, stop on error, the SQL as one argument", () => {
  assert.deepEqual(psqlArgs({ psql: "psql", sql: "select 1; select '-d x'" }), ["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", "select 1; select '-d x'"]);
  assert.deepEqual(psqlArgs({ psql: "psql", sql: "x", connect: ["-d", "postgres"], quiet: true }), ["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", "x"]);
});

test("runPsql and runPsqlSync: output, failure, a missing binary", async () => {
  const dir = mkdtempSync(join(tmpdir(), "pgsc-psql-"));
  try {
    const fake = join(dir, "psql");
    // Echoes its last argument; fails when it is "fail".
    writeFileSync(fake, '#!/bin/sh\nfor a; do last=$a; done\n[ "$last" = fail ] && { echo "ERROR: boom" >&2; exit 3; }\necho "$last"\n');
    chmodSync(fake, 0o755);
    assert.deepEqual(runPsqlSync({ psql: fake, sql: "a b" }), { ok: true, stdout: "a b\n", stderr: "" });
    assert.deepEqual(await runPsql({ psql: fake, sql: "fail" }), { ok: false, stdout: "", stderr: "ERROR: boom\n" });
    const missing = await runPsql({ psql: join(dir, "nope"), sql: "x" });
    assert.equal(missing.ok, false);
    assert.match(missing.stderr, /ENOENT/);
    assert.equal(runPsqlSync({ psql: join(dir, "nope"), sql: "x" }).ok, false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
