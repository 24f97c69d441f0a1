import { test } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { descriptorIdentity, findServerCode, parseFdinfoIdentity } from "./server-code.js";

const asRoot = process.getuid?.() === 0;
const server = { uid: 4242, gids: [4242], name: "pgtest" };

/** PREFIX/bin/postgres and PREFIX/<lib>/plpgsql.so in a root-owned 0755 directory. */
function installation(lib: string): { root: string; postgres: string; module: string } {
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-servercode-"));
  chmodSync(root, 0o755);
  mkdirSync(join(root, "bin"));
  mkdirSync(join(root, lib), { recursive: true });
  writeFileSync(join(root, "bin", "postgres"), "");
  const module = join(root, lib, "plpgsql.so");
  writeFileSync(module, "\x7fELF", { mode: 0o644 });
  chmodSync(module, 0o644);
  return { root, postgres: join(root, "bin", "postgres"), module };
}

/** The identity fdinfo gives a descriptor of `path` this process opens. */
function identityOf(path: string) {
  const fd = openSync(path, "r");
  try {
    return descriptorIdentity(process.pid, fd);
  } finally {
    closeSync(fd);
  }
}

test("findServerCode takes plpgsql.so beside postgres (Debian's and the upstream layout) by mount and inode", { skip: !asRoot && "needs root (files owned by root)" }, () => {
  for (const lib of ["lib", "lib/postgresql"]) {
    const i = installation(lib);
    try {
      const st = statSync(i.module, { bigint: true });
      const found = findServerCode(i.postgres, server);
      assert.deepEqual(found.refused, [], lib);
      assert.deepEqual(found.files, [identityOf(i.module)], lib);
      assert.equal(found.files[0]?.ino, st.ino.toString(), lib);
    } finally {
      rmSync(i.root, { recursive: true, force: true });
    }
  }
});

test("findServerCode refuses a module the server's user could change: its own, group- or world-writable, or in a directory it can write", { skip: !asRoot && "needs root (files owned by root)" }, () => {
  const cases: Array<[string, (i: ReturnType<typeof installation>) => void]> = [
    ["owned by the server's user", (i) => chownSync(i.module, server.uid, server.gids[0]!)],
    ["world-writable", (i) => chmodSync(i.module, 0o646)],
    ["in a directory the server's user owns", (i) => chownSync(join(i.root, "lib"), server.uid, server.gids[0]!)],
  ];
  for (const [what, spoil] of cases) {
    const i = installation("lib");
    try {
      spoil(i);
      const found = findServerCode(i.postgres, server);
      assert.deepEqual(found.files, [], what);
      assert.ok(found.refused.length > 0, what);
    } finally {
      rmSync(i.root, { recursive: true, force: true });
    }
  }
});

test("findServerCode holds the module it takes: replaced by a rename (an upgrade), its inode number goes to no new file", { skip: !asRoot && "needs root (files owned by root)" }, () => {
  const i = installation("lib");
  try {
    const taken = findServerCode(i.postgres, server).files[0];
    assert.ok(taken);
    copyFileSync(i.module, `${i.module}.new`);
    renameSync(`${i.module}.new`, i.module);
    // ext4 and tmpfs hand a freed inode number to the next file made nearby: here it stays taken.
    for (let n = 0; n < 50; n++) {
      const f = join(i.root, "lib", `f${n}`);
      writeFileSync(f, "");
      const st = statSync(f, { bigint: true });
      assert.notEqual(st.ino.toString(), taken.ino, `file ${n} got the old module's inode`);
    }
  } finally {
    rmSync(i.root, { recursive: true, force: true });
  }
});

test("descriptorIdentity names the file behind a process's descriptor, whatever its path now", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-fdid-"));
  try {
    const p = join(dir, "f");
    writeFileSync(p, "x");
    const fd = openSync(p, "r");
    try {
      const st = statSync(p, { bigint: true });
      rmSync(p); // unlinked: the descriptor still names the inode
      const id = descriptorIdentity(process.pid, fd);
      assert.equal(id?.ino, st.ino.toString());
      assert.match(id?.mnt ?? "", /^\d+$/);
    } finally {
      closeSync(fd);
    }
    assert.equal(descriptorIdentity(process.pid, 1_000_000), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("descriptorIdentity: another mount is another identity; parseFdinfoIdentity needs both lines", () => {
  const here = identityOf("/proc/self/status");
  const dev = identityOf("/dev/null");
  assert.ok(here && dev);
  assert.notEqual(here.mnt, dev.mnt);
  assert.deepEqual(parseFdinfoIdentity("pos:\t0\nflags:\t0100000\nmnt_id:\t24\nino:\t3\n"), { mnt: "24", ino: "3" });
  // A kernel whose fdinfo has no inode line: no identity (the module is then classified as any other).
  assert.equal(parseFdinfoIdentity("pos:\t0\nflags:\t0100000\nmnt_id:\t24\n"), undefined);
  assert.equal(parseFdinfoIdentity("pos:\t0\nino:\t3\n"), undefined);
});
