// safe-fs against real files, links, FIFOs and sparse files (as root, with the postgres user as
// the hostile owner where ownership matters).

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { chmodSync, closeSync, existsSync, lchownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, truncateSync, writeFileSync, chownSync, fstatSync, writeSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { libcAvailable } from "../kernel/index.js";
import { makeDirectoryAt, openAppendAt, openDirectoryNoFollow, openSubdirectory, readRegularFileAt, removeNameAt, renameWithin, UnsafePathError } from "./safe-fs.js";

const SECRET = "TOP-SECRET-7f3a9c";
const skip = process.getuid?.() !== 0 ? "needs root (files owned by the postgres user)" : !libcAvailable().ok ? "no libc via koffi" : false;
const pg = skip ? { uid: -1, gid: -1 } : { uid: Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" })), gid: Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" })) };

const root = mkdtempSync(join(tmpdir(), "pg_seccomp-safefs-"));
chmodSync(root, 0o755);
after(() => rmSync(root, { recursive: true, force: true }));

function fresh(name: string): string {
  const d = join(root, name);
  mkdirSync(d, { mode: 0o755 });
  return d;
}

function refused(f: () => unknown, problem: RegExp): UnsafePathError {
  let caught: unknown;
  try {
    f();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof UnsafePathError, `expected an UnsafePathError, got ${String(caught)}`);
  assert.match(caught.problem, problem);
  assert.doesNotMatch(caught.message, new RegExp(SECRET), "the message never holds the file's content");
  return caught;
}

test("openDirectoryNoFollow opens a real path and refuses a link in any component", { skip }, () => {
  const d = fresh("dirs");
  mkdirSync(join(d, "a/b"), { recursive: true });
  symlinkSync(join(d, "a"), join(d, "link"));
  const fd = openDirectoryNoFollow(join(d, "a/b"));
  assert.ok(fstatSync(fd).isDirectory());
  closeSync(fd);
  refused(() => openDirectoryNoFollow(join(d, "link/b")), /symbolic link/);
  refused(() => openDirectoryNoFollow(join(d, "link")), /symbolic link/);
  refused(() => openDirectoryNoFollow(join(d, "nope")), /does not exist/);
  // The check sees every directory and may refuse one.
  const seen: string[] = [];
  closeSync(openDirectoryNoFollow(join(d, "a/b"), (p) => (seen.push(p), undefined)));
  assert.deepEqual(seen.slice(-3), [d, join(d, "a"), join(d, "a/b")]);
  assert.equal(seen[0], "/");
  refused(() => openDirectoryNoFollow(join(d, "a/b"), (p) => (p === join(d, "a") ? "not this one" : undefined)), /not this one/);
});

test("readRegularFileAt reads a regular file of the right owner, bounded", { skip }, () => {
  const d = fresh("read");
  writeFileSync(join(d, "ok.json"), '{"a":1}');
  chownSync(join(d, "ok.json"), pg.uid, pg.gid);
  const fd = openDirectoryNoFollow(d);
  try {
    assert.equal(readRegularFileAt(fd, "ok.json", 4096, { owner: pg.uid }).toString(), '{"a":1}');
    // Owned by root, not by the server's user: refused, content unread.
    writeFileSync(join(d, "rootfile"), SECRET);
    refused(() => readRegularFileAt(fd, "rootfile", 4096, { owner: pg.uid }), /owned by uid 0/);
    // Too large by size, and a huge sparse file: refused without reading it.
    writeFileSync(join(d, "big"), "x".repeat(4097));
    chownSync(join(d, "big"), pg.uid, pg.gid);
    refused(() => readRegularFileAt(fd, "big", 4096, { owner: pg.uid }), /too large/);
    writeFileSync(join(d, "sparse"), "");
    truncateSync(join(d, "sparse"), 64 * 1024 * 1024 * 1024);
    chownSync(join(d, "sparse"), pg.uid, pg.gid);
    const t0 = Date.now();
    refused(() => readRegularFileAt(fd, "sparse", 4096, { owner: pg.uid }), /too large/);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(readRegularFileAt(fd, "big", 8192).length, 4097);
  } finally {
    closeSync(fd);
  }
});

test("readRegularFileAt never follows a link and never opens a FIFO or a device", { skip }, () => {
  const d = fresh("links");
  const secretDir = fresh("secret");
  chmodSync(secretDir, 0o700);
  writeFileSync(join(secretDir, "s"), SECRET);
  symlinkSync(join(secretDir, "s"), join(d, "tosecret.json"));
  lchownSync(join(d, "tosecret.json"), pg.uid, pg.gid);
  symlinkSync("/dev/zero", join(d, "zero.json"));
  symlinkSync("/dev/kmsg", join(d, "kmsg.json"));
  execFileSync("mkfifo", [join(d, "fifo.json")]);
  chownSync(join(d, "fifo.json"), pg.uid, pg.gid);
  const fd = openDirectoryNoFollow(d);
  try {
    for (const n of ["tosecret.json", "zero.json", "kmsg.json"]) refused(() => readRegularFileAt(fd, n, 4096, { owner: pg.uid }), /symbolic link/);
    const t0 = Date.now();
    refused(() => readRegularFileAt(fd, "fifo.json", 4096, { owner: pg.uid }), /not a regular file/);
    assert.ok(Date.now() - t0 < 1000, "a FIFO does not block");
    refused(() => readRegularFileAt(fd, "../secret/s", 4096), /not a plain file name/);
    refused(() => readRegularFileAt(fd, "missing", 4096), /does not exist/);
    // A second name of a file: refused when asked for one name only.
    writeFileSync(join(d, "one"), "x");
    linkSync(join(d, "one"), join(d, "two"));
    refused(() => readRegularFileAt(fd, "two", 4096, { singleLink: true }), /hard link/);
    // Removing a link removes the link, not its target.
    assert.equal(removeNameAt(fd, "tosecret.json"), true);
    assert.equal(existsSync(join(d, "tosecret.json")), false);
    assert.equal(readFileSync(join(secretDir, "s"), "utf8"), SECRET);
    assert.equal(removeNameAt(fd, "tosecret.json"), false);
  } finally {
    closeSync(fd);
  }
});

test("makeDirectoryAt / openSubdirectory refuse a link in the directory's place", { skip }, () => {
  const d = fresh("mk");
  const fd = openDirectoryNoFollow(d);
  try {
    assert.equal(makeDirectoryAt(fd, "spool", 0o700), true);
    assert.equal(makeDirectoryAt(fd, "spool", 0o700), false);
    const sub = openSubdirectory(fd, "spool")!;
    assert.ok(fstatSync(sub).isDirectory());
    closeSync(sub);
    symlinkSync("/root", join(d, "evil"));
    assert.equal(makeDirectoryAt(fd, "evil", 0o700), false);
    refused(() => openSubdirectory(fd, "evil"), /symbolic link or not a directory/);
    assert.equal(openSubdirectory(fd, "absent"), undefined);
  } finally {
    closeSync(fd);
  }
});

test("openAppendAt: creates, appends, refuses links and non-regular files, O_EXCL on demand; rename stays inside", { skip }, () => {
  const d = fresh("append");
  const target = join(fresh("victim"), "passwd");
  writeFileSync(target, "root:x:0:0\n");
  const fd = openDirectoryNoFollow(d);
  try {
    const f = openAppendAt(fd, "log", 0o640, { owner: 0 });
    writeSync(f, "one\n");
    closeSync(f);
    assert.equal(lstatSync(join(d, "log")).mode & 0o777, 0o640);
    symlinkSync(target, join(d, "link"));
    refused(() => openAppendAt(fd, "link", 0o640), /symbolic link/);
    assert.equal(readFileSync(target, "utf8"), "root:x:0:0\n");
    mkdirSync(join(d, "adir"));
    refused(() => openAppendAt(fd, "adir", 0o640), /cannot be opened \(EISDIR\)/);
    writeFileSync(join(d, "theirs"), "");
    chownSync(join(d, "theirs"), pg.uid, pg.gid);
    refused(() => openAppendAt(fd, "theirs", 0o640, { owner: 0 }), /owned by uid/);
    renameWithin(fd, "log", "log.1");
    assert.equal(readFileSync(join(d, "log.1"), "utf8"), "one\n");
    closeSync(openAppendAt(fd, "log", 0o640, { exclusive: true }));
    refused(() => openAppendAt(fd, "log", 0o640, { exclusive: true }), /exists already/);
  } finally {
    closeSync(fd);
  }
});
