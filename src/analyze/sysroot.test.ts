import { test } from "node:test";
import assert from "node:assert/strict";
import { normalize } from "node:path";
import { defaultSysroot, findNeeded, STANDARD_DIRS, type LoaderEnv, type Requester } from "./resolve.js";

// The loader's search with a sysroot: absolute paths written in the binary and the standard
// directories are taken inside the target's root; $ORIGIN stays next to the requesting file.
const files = new Set([
  "/cross/lib/libc.so.6",
  "/cross/opt/pg/lib/libssl.so.1.1",
  "/pkg/native/lib/libicuuc.so.60",
  "/lib/x86_64-linux-gnu/libc.so.6",
]);
const env: LoaderEnv = {
  arch: "aarch64", sysroot: "/cross", cache: [], standardDirs: STANDARD_DIRS.aarch64.map((d) => `/cross${d}`),
  isElfOf: (p) => files.has(normalize(p)),
};
const exe: Requester = { name: "postgres", path: "/pkg/native/bin/postgres", rpath: [], runpath: ["$ORIGIN/../lib", "/opt/pg/lib"] };

test("sysroot: standard directories and absolute RUNPATH entries inside it, $ORIGIN relative to the file", () => {
  assert.deepEqual(findNeeded("libc.so.6", exe, exe, env), { path: "/cross/lib/libc.so.6", how: "standard" });
  assert.deepEqual(findNeeded("libssl.so.1.1", exe, exe, env), { path: "/cross/opt/pg/lib/libssl.so.1.1", how: "runpath" });
  assert.deepEqual(findNeeded("libicuuc.so.60", exe, exe, env), { path: "/pkg/native/bin/../lib/libicuuc.so.60", how: "runpath" });
  const miss = findNeeded("libm.so.6", exe, exe, env);
  assert.ok("searched" in miss && miss.searched.every((p) => p.startsWith("/cross/") || p.startsWith("/pkg/")), "never the host's directories");
});

test("default sysroot: none for the host's arch; Debian's cross root for another arch only when installed", () => {
  assert.equal(defaultSysroot("x86_64", "x86_64"), undefined);
  const d = defaultSysroot("aarch64", "x86_64");
  assert.ok(d === undefined || d === "/usr/aarch64-linux-gnu");
});
