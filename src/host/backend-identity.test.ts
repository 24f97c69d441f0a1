import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { devParts, entryInAuxv, executableBase, mapsFileAt, nameDecoder, readExecutable } from "./backend-identity.js";
import { parseElf } from "../analyze/elf.js";

test("nameDecoder reads a name's bytes as the server's encoding converts them for a UTF8 client", () => {
  const jurgen = Buffer.from([0x6a, 0xfc, 0x72, 0x67, 0x65, 0x6e]); // "jürgen" in LATIN1
  assert.equal(nameDecoder("LATIN1")(jurgen), "jürgen");
  assert.equal(nameDecoder("UTF8")(Buffer.from("jürgen", "utf8")), "jürgen");
  assert.equal(nameDecoder("UTF8")(jurgen), undefined, "invalid UTF-8 cannot be compared");
  // LATIN1 is ISO 8859-1 (0x80-0x9f are C1 controls), not windows-1252 (WHATWG's "latin1").
  assert.equal(nameDecoder("LATIN1")(Buffer.from([0x80])), "\u0080");
  assert.equal(nameDecoder("WIN1251")(Buffer.from([0xc0])), "А");
  assert.equal(nameDecoder("WIN1252")(Buffer.from([0x80])), undefined, "not decoded here (Node's windows-1252 is ISO 8859-1): ASCII only");
  assert.equal(nameDecoder("KOI8R")(Buffer.from([0xc1])), "а");
  // SQL_ASCII converts nothing: read as the monitor's client reads it.
  assert.equal(nameDecoder("SQL_ASCII")(jurgen), jurgen.toString("utf8"));
  // An encoding not known here: ASCII names only.
  assert.equal(nameDecoder("MULE_INTERNAL")(Buffer.from("alice")), "alice");
  assert.equal(nameDecoder("MULE_INTERNAL")(jurgen), undefined);
  assert.equal(nameDecoder(undefined)(Buffer.from("alice")), "alice");
});

test("mapsFileAt: the file by device and inode at offset 0 at the address, its path replaced (\"(deleted)\") or not", () => {
  const file = { major: 0xfd, minor: 1, ino: 1234n };
  const maps = [
    "200000000-200001000 r--p 00000000 fd:01 1234 /usr/lib/postgresql/15/bin/postgres",
    "55d0c0000000-55d0c0100000 r--p 00000000 fd:01 999 /usr/lib/x86_64-linux-gnu/libc.so.6",
    "55d0c1000000-55d0c1100000 r--p 00001000 fd:01 1234 /usr/lib/postgresql/15/bin/postgres (deleted)",
    "55d0c2000000-55d0c2100000 r--p 00000000 fd:01 1234 /usr/lib/postgresql/15/bin/postgres (deleted)",
  ].join("\n");
  assert.equal(mapsFileAt(maps, file, 0x55d0c2000000n), true);
  assert.equal(mapsFileAt(maps, file, 0x200000000n), true, "a second mapping of the file is found only at its own address");
  assert.equal(mapsFileAt(maps, file, 0x55d0c1000000n), false, "not at offset 0");
  assert.equal(mapsFileAt(maps, file, 0x55d0c0000000n), false, "another file");
  assert.equal(mapsFileAt(maps, { ...file, minor: 2 }, 0x55d0c2000000n), false, "another device");
  assert.deepEqual(devParts(0xfd01n), { major: 0xfd, minor: 1 });
  assert.deepEqual(devParts(0x10303n), { major: 259, minor: 3 });
  assert.deepEqual(devParts(0x1200034n), { major: 0, minor: 0x1234 }, "a minor above 255 (overlay, tmpfs: anonymous devices)");
});

test("entryInAuxv reads AT_ENTRY up to AT_NULL", () => {
  const auxv = (pairs: Array<[bigint, bigint]>) => {
    const b = Buffer.alloc(pairs.length * 16);
    pairs.forEach(([t, v], i) => {
      b.writeBigUInt64LE(t, i * 16);
      b.writeBigUInt64LE(v, i * 16 + 8);
    });
    return b;
  };
  assert.equal(entryInAuxv(auxv([[6n, 4096n], [9n, 0x55d0c2012340n], [0n, 0n]])), 0x55d0c2012340n);
  assert.equal(entryInAuxv(auxv([[6n, 4096n], [0n, 0n], [9n, 1n]])), undefined, "nothing after AT_NULL");
  assert.equal(entryInAuxv(Buffer.alloc(8)), undefined);
});

test("executableBase: a running position-independent executable's load address, from its AT_ENTRY, where its maps show it at offset 0", async () => {
  const path = ["/usr/bin/sleep", "/bin/sleep"].find((p) => existsSync(p));
  const exe = path ? readExecutable(path) : undefined;
  const elf = exe ? parseElf(exe.bytes) : undefined;
  if (!exe || !elf || elf.type !== 3) return; // no PIE sleep here: nothing to read
  const child = spawn(exe.real, ["30"], { stdio: "ignore" });
  try {
    let first: string | undefined;
    for (let i = 0; i < 100 && !first; i++) {
      await new Promise((r) => setTimeout(r, 20));
      first = readFileSync(`/proc/${child.pid}/maps`, "utf8").split("\n").find((l) => l.endsWith(` ${exe.real}`) && / 00000000 /.test(l));
    }
    assert.ok(first, "sleep's maps");
    assert.equal(executableBase(child.pid!, exe.file, BigInt(elf.entry)), BigInt(`0x${first.split("-")[0]}`));
    assert.equal(executableBase(child.pid!, exe.file, BigInt(elf.entry) + 0x1000n), undefined, "another entry: no mapping of the file there");
  } finally {
    child.kill();
  }
});
