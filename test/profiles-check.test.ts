// `pg_seccomp check` on every bundled profile, as a user would run it (no --arch): a profile
// names one arch's syscalls, and check takes that arch from the file name or a "# arch:" line.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BIN } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { hostArch } from "../src/syscalls/index.js";

const check = (...args: string[]) => spawnSync(process.execPath, [BIN, "check", ...args], { encoding: "utf8" });

for (const name of readdirSync(repoPath("profiles")).filter((n) => /^postgresql-\d+-(x86_64|aarch64)(-io_uring)?\.conf$/.test(n))) {
  test(`pg_seccomp check profiles/${name}`, () => {
    const arch = /-(x86_64|aarch64)/.exec(name)![1]!;
    const other = arch === "x86_64" ? "aarch64" : "x86_64";
    const r = check(repoPath(`profiles/${name}`));
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${arch} global: \\d+ instructions$`, "m"));
    assert.doesNotMatch(r.stdout, new RegExp(`^${other} `, "m"));
    assert.match(r.stdout, new RegExp(`: ok for ${arch} \\(its file name; 1 file, \\d+ warnings?\\)`));
  });
}

test("check: the arch from a '# arch:' line; without one, this machine's; --arch all: every arch (x86_64's list fails on aarch64, which has no stat or open, with a clear message)", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-check-arch-"));
  try {
    const text = readFileSync(repoPath("profiles/postgresql-18-aarch64.conf"), "utf8");
    const named = join(dir, "mine.conf");
    writeFileSync(named, text);
    const r = check(named);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /: ok for aarch64 \(its # arch: line/);
    const bare = join(dir, "bare.conf");
    writeFileSync(bare, readFileSync(repoPath("profiles/postgresql-18-x86_64.conf"), "utf8").replace(/^# arch: .*$/m, ""));
    const host = check(bare);
    assert.match(host.stdout + host.stderr, new RegExp(`(ok for ${hostArch()} \\(this machine's; --arch all checks every one)|does not exist on ${hostArch()}`));
    assert.equal(host.status === 0, hostArch() === "x86_64", host.stderr);
    const b = check("--arch", "all", bare);
    assert.notEqual(b.status, 0);
    assert.match(b.stderr, /bare\.conf:\d+:\d+: syscall "\w+" does not exist on aarch64 \(it exists on x86_64\)/);
    assert.doesNotMatch(b.stderr, /\n\s+at /);
    // --arch still decides.
    assert.equal(check("--arch", "x86_64", bare).status, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
