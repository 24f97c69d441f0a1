// postmaster.pid, as the server's user may write it. (readServerFile's refusals of links, FIFOs
// and devices are tested in host/data-dir.test.ts.)

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parsePostmasterPid, parsePostmasterPidFile, readPostmasterPidFile } from "./server-files.js";

const REAL = "4242\n/var/lib/postgresql/15/main\n1700000000\n5432\n/var/run/postgresql\n*\n  5432001    32768\nready   \n";

test("postmaster.pid: every line PostgreSQL writes", () => {
  assert.deepEqual(parsePostmasterPidFile(REAL), { pid: 4242, port: "5432", socketDir: "/var/run/postgresql", listenAddress: "*", status: "ready" });
  assert.equal(parsePostmasterPid(REAL), 4242);
});

test("postmaster.pid: cut short, or written by a hostile user", () => {
  assert.deepEqual(parsePostmasterPidFile(""), { status: "" });
  assert.deepEqual(parsePostmasterPidFile("4242\n/data\n"), { pid: 4242, status: "" });
  assert.deepEqual(parsePostmasterPidFile("4242\n/data\n1\n5432\n"), { pid: 4242, port: "5432", socketDir: "", status: "" });
  for (const first of ["-1", "0", "42a", " ", "4242 4243", "0x10"]) assert.equal(parsePostmasterPid(`${first}\n`), undefined, first);
  const bad = parsePostmasterPidFile("1\n/d\n1\n5432; rm -rf /\n/tmp\n\n\nready\n");
  assert.equal(bad.port, undefined, "a port that is not digits is no port");
  assert.equal(bad.status, "ready");
  assert.equal(parsePostmasterPidFile("1\r\n/d\n").pid, 1, "a CR is whitespace");
});

test("readPostmasterPidFile: through the safe reader (a link is not followed)", () => {
  const dir = mkdtempSync(join(tmpdir(), "pgsc-pid-"));
  try {
    assert.equal(readPostmasterPidFile(dir), undefined);
    writeFileSync(join(dir, "real"), REAL);
    symlinkSync(join(dir, "real"), join(dir, "postmaster.pid"));
    assert.equal(readPostmasterPidFile(dir), undefined);
    rmSync(join(dir, "postmaster.pid"));
    writeFileSync(join(dir, "postmaster.pid"), REAL + "x".repeat(10000));
    assert.equal(readPostmasterPidFile(dir)?.pid, 4242);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
