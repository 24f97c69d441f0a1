import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { baseInMaps, devParts, executableBase, nameDecoder, readExecutable } from "./backend-identity.js";

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

test("baseInMaps finds the executable by device and inode, its path replaced (\"(deleted)\") or not", () => {
  const file = { major: 0xfd, minor: 1, ino: 1234n };
  const maps = [
    "55d0c0000000-55d0c0100000 r--p 00000000 fd:01 999 /usr/lib/x86_64-linux-gnu/libc.so.6",
    "55d0c1000000-55d0c1100000 r--p 00001000 fd:01 1234 /usr/lib/postgresql/15/bin/postgres (deleted)",
    "55d0c2000000-55d0c2100000 r--p 00000000 fd:01 1234 /usr/lib/postgresql/15/bin/postgres (deleted)",
  ].join("\n");
  assert.equal(baseInMaps(maps, file), 0x55d0c2000000n);
  assert.equal(baseInMaps(maps, { ...file, minor: 2 }), undefined, "another device");
  assert.equal(baseInMaps(maps, { ...file, ino: 999n, major: 0xfe }), undefined);
  assert.deepEqual(devParts(0xfd01n), { major: 0xfd, minor: 1 });
  assert.deepEqual(devParts(0x10303n), { major: 259, minor: 3 });
  assert.deepEqual(devParts(0x1200034n), { major: 0, minor: 0x1234 }, "a minor above 255 (overlay, tmpfs: anonymous devices)");
});

test("executableBase: this process's own executable, read by readExecutable, is found in its maps", () => {
  const exe = readExecutable(process.execPath);
  const base = executableBase(process.pid, exe.file);
  assert.ok(base !== undefined && base > 0n);
  const first = readFileSync("/proc/self/maps", "utf8").split("\n").find((l) => l.endsWith(` ${exe.real}`) && / 00000000 /.test(l));
  assert.equal(base, BigInt(`0x${first!.split("-")[0]}`));
});
