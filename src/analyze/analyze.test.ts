import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseLdCache, parseLdconfigP } from "./ldcache.js";
import { derivePkglibdir, expandDst, findNeeded, resolveExtension, type LoaderEnv, type Requester } from "./resolve.js";
import { ElfError, dynamicInfo, elfHeaderArch, parseElf } from "./elf.js";
import { loadDisassembler } from "./disasm.js";
import { indexFunction, valuesAt, type Outcome } from "./dataflow.js";
import type { Arch } from "../syscalls/index.js";

// ---- ld.so.cache

function buildCache(entries: Array<{ name: string; path: string; flags: number }>): Buffer {
  const header = Buffer.alloc(48);
  header.write("glibc-ld.so.cache1.1", 0, "latin1");
  header.writeUInt32LE(entries.length, 20);
  const table = Buffer.alloc(entries.length * 24);
  let strings = "";
  const strBase = 48 + table.length;
  entries.forEach((e, i) => {
    const k = strBase + strings.length;
    strings += e.name + "\0";
    const v = strBase + strings.length;
    strings += e.path + "\0";
    table.writeInt32LE(e.flags, i * 24);
    table.writeUInt32LE(k, i * 24 + 4);
    table.writeUInt32LE(v, i * 24 + 8);
  });
  header.writeUInt32LE(strings.length, 24);
  return Buffer.concat([header, table, Buffer.from(strings, "latin1")]);
}

test("ld.so.cache: new format entries with their arch", () => {
  const buf = buildCache([
    { name: "libz.so.1", path: "/lib/x86_64-linux-gnu/libz.so.1", flags: 0x0303 },
    { name: "libz.so.1", path: "/lib/aarch64-linux-gnu/libz.so.1", flags: 0x0a03 },
    { name: "libold.so", path: "/x/libold.so", flags: 0x0001 }, // not ELF_LIBC6: skipped
  ]);
  assert.deepEqual(parseLdCache(buf), [
    { name: "libz.so.1", path: "/lib/x86_64-linux-gnu/libz.so.1", arch: "x86_64" },
    { name: "libz.so.1", path: "/lib/aarch64-linux-gnu/libz.so.1", arch: "aarch64" },
  ]);
  assert.throws(() => parseLdCache(Buffer.from("nonsense that is long enough to be read as a header.........")), /not a glibc-ld.so.cache1.1/);
});

test("ld.so.cache: this machine's cache names libc.so.6", { skip: existsSync("/etc/ld.so.cache") ? false : "no /etc/ld.so.cache" }, () => {
  const entries = parseLdCache(readFileSync("/etc/ld.so.cache"));
  assert.ok(entries.some((e) => e.name === "libc.so.6" && e.path.endsWith("libc.so.6")));
});

test("ldconfig -p output", () => {
  const text = "2 libs found in cache `/etc/ld.so.cache'\n\tlibz.so.1 (libc6,x86-64) => /lib/x86_64-linux-gnu/libz.so.1\n\tlibfoo.so (libc6,AArch64) => /usr/lib/aarch64-linux-gnu/libfoo.so\n";
  assert.deepEqual(parseLdconfigP(text), [
    { name: "libz.so.1", path: "/lib/x86_64-linux-gnu/libz.so.1", arch: "x86_64" },
    { name: "libfoo.so", path: "/usr/lib/aarch64-linux-gnu/libfoo.so", arch: "aarch64" },
  ]);
});

// ---- DT_NEEDED resolution

function env(files: string[], cache: LoaderEnv["cache"] = [], arch: Arch = "x86_64"): LoaderEnv {
  const set = new Set(files);
  return { arch, cache, standardDirs: ["/lib/x86_64-linux-gnu", "/usr/lib"], isElfOf: (p) => set.has(p) };
}
const req = (path: string, rpath: string[] = [], runpath: string[] = []): Requester => ({ name: path.split("/").pop()!, path, rpath, runpath });

test("DT_NEEDED: RUNPATH with $ORIGIN before ld.so.cache and standard dirs", () => {
  const exe = req("/opt/pg/bin/postgres", [], ["$ORIGIN/../lib"]);
  const e = env(["/opt/pg/bin/../lib/libssl.so.3", "/lib/x86_64-linux-gnu/libssl.so.3"], [{ name: "libssl.so.3", path: "/lib/x86_64-linux-gnu/libssl.so.3", arch: "x86_64" }]);
  assert.deepEqual(findNeeded("libssl.so.3", exe, exe, e), { path: "/opt/pg/bin/../lib/libssl.so.3", how: "runpath" });
});

test("DT_NEEDED: ld.so.cache, then standard dirs; a cache entry of another arch is ignored", () => {
  const exe = req("/usr/bin/x");
  const cache = [
    { name: "libz.so.1", path: "/somewhere/arm/libz.so.1", arch: "aarch64" as const },
    { name: "libz.so.1", path: "/cached/libz.so.1", arch: "x86_64" as const },
  ];
  assert.deepEqual(findNeeded("libz.so.1", exe, exe, env(["/cached/libz.so.1", "/usr/lib/libz.so.1", "/somewhere/arm/libz.so.1"], cache)), { path: "/cached/libz.so.1", how: "ld.so.cache" });
  assert.deepEqual(findNeeded("libq.so", exe, exe, env(["/usr/lib/libq.so"])), { path: "/usr/lib/libq.so", how: "standard" });
  const miss = findNeeded("libnone.so", exe, exe, env([]));
  assert.ok("searched" in miss && miss.searched.includes("/usr/lib/libnone.so"));
});

test("DT_NEEDED: RPATH of the requester and of the executable; RUNPATH disables both", () => {
  const exe = req("/opt/a/bin/postgres", ["/opt/a/private"]);
  const lib = req("/opt/a/lib/libx.so", ["$ORIGIN/inner"]);
  const e = env(["/opt/a/lib/inner/liby.so", "/opt/a/private/libz.so", "/usr/lib/libz.so"]);
  assert.deepEqual(findNeeded("liby.so", lib, exe, e), { path: "/opt/a/lib/inner/liby.so", how: "rpath" });
  assert.deepEqual(findNeeded("libz.so", lib, exe, e), { path: "/opt/a/private/libz.so", how: "rpath" });
  const withRunpath = req("/opt/a/lib/libw.so", ["/opt/a/private"], ["/nowhere"]);
  assert.deepEqual(findNeeded("libz.so", withRunpath, exe, e), { path: "/usr/lib/libz.so", how: "standard" });
});

test("$ORIGIN expansion", () => {
  // Not normalized: the kernel resolves ".." after following a symlinked bin directory.
  assert.equal(expandDst("$ORIGIN/../lib", "/opt/pg/bin"), "/opt/pg/bin/../lib");
  assert.equal(expandDst("${ORIGIN}/x", "/o"), "/o/x");
  assert.equal(expandDst("$PLATFORM/x", "/o"), undefined);
  // A relative origin (analyze --postgres bin/postgres) is relative to the working directory, not doubled.
  assert.equal(expandDst("$ORIGIN/../lib", "pg/bin"), `${process.cwd().replace(/\/+$/, "")}/pg/bin/../lib`);
});

test("pkglibdir: Debian layout and <prefix>/lib/postgresql; NAME resolves to NAME.so", () => {
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-pkglib-"));
  try {
    const deb = join(root, "usr/lib/postgresql/15");
    mkdirSync(join(deb, "bin"), { recursive: true });
    mkdirSync(join(deb, "lib"), { recursive: true });
    writeFileSync(join(deb, "lib/plpgsql.so"), "");
    writeFileSync(join(deb, "lib/pgcrypto.so"), "");
    assert.equal(derivePkglibdir(join(deb, "bin/postgres")), join(deb, "lib"));
    const other = join(root, "opt/pg");
    mkdirSync(join(other, "bin"), { recursive: true });
    mkdirSync(join(other, "lib/postgresql"), { recursive: true });
    writeFileSync(join(other, "lib/postgresql/plpgsql.so"), "");
    assert.equal(derivePkglibdir(join(other, "bin/postgres")), join(other, "lib/postgresql"));
    assert.deepEqual(resolveExtension("pgcrypto", join(deb, "lib")), { path: join(deb, "lib/pgcrypto.so") });
    assert.match((resolveExtension("nope", join(deb, "lib")) as { error: string }).error, /does not exist/);
    assert.match((resolveExtension("a b", join(deb, "lib")) as { error: string }).error, /not a module name/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

// ---- ELF

test("ELF: refuses what it does not handle, with a reason", () => {
  assert.deepEqual(elfHeaderArch(Buffer.from("#!/bin/sh\n".padEnd(64))), { error: "not an ELF file" });
  const h = Buffer.alloc(64);
  h.writeUInt32BE(0x7f454c46, 0);
  h[4] = 1;
  assert.deepEqual(elfHeaderArch(h), { error: "not a 64-bit ELF file" });
  h[4] = 2;
  h[5] = 1;
  h.writeUInt16LE(40, 18); // EM_ARM
  assert.match((elfHeaderArch(h) as { error: string }).error, /neither x86_64 nor aarch64/);
  h.writeUInt16LE(62, 18);
  assert.throws(() => parseElf(h), ElfError);
});

test("ELF: a real dynamic executable's DT_NEEDED", { skip: existsSync("/bin/ls") ? false : "no /bin/ls" }, () => {
  const elf = parseElf(readFileSync("/bin/ls"));
  assert.ok(dynamicInfo(elf).needed.includes("libc.so.6"));
});

// ---- backward data flow on handcrafted code

async function flow(arch: Arch, code: number[] | Buffer, site: number, reg: string): Promise<Outcome[]> {
  const dis = await loadDisassembler();
  const bytes = Buffer.isBuffer(code) ? code : Buffer.from(code);
  const d = dis.decode(arch, bytes, 0x1000);
  assert.ok(d.complete, "handcrafted code decodes");
  const fn = indexFunction(arch, d.insns);
  const idx = fn.indexOf.get(0x1000 + site);
  assert.notEqual(idx, undefined, `an instruction at +${site}`);
  return valuesAt(fn, idx!, reg).sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));
}
const C = (value: number): Outcome => ({ kind: "const", value });

test("x86_64 data flow: mov imm to eax/rax, register moves, merges, arguments, unknowns", async () => {
  assert.deepEqual(await flow("x86_64", [0xb8, 0x27, 0, 0, 0, 0x0f, 0x05], 5, "rax"), [C(39)]); // mov eax, 39; syscall
  assert.deepEqual(await flow("x86_64", [0x48, 0xc7, 0xc0, 0x3c, 0, 0, 0, 0x0f, 0x05], 7, "rax"), [C(60)]); // mov rax, 60
  assert.deepEqual(await flow("x86_64", [0xbf, 0x0c, 0, 0, 0, 0x89, 0xf8, 0x0f, 0x05], 7, "rax"), [C(12)]); // mov edi, 12; mov eax, edi
  assert.deepEqual(await flow("x86_64", [0x31, 0xc0, 0x0f, 0x05], 2, "rax"), [C(0)]); // xor eax, eax
  // test edi,edi; je L; mov eax,1; jmp S; L: mov eax,2; S: syscall
  assert.deepEqual(await flow("x86_64", [0x85, 0xff, 0x74, 0x07, 0xb8, 1, 0, 0, 0, 0xeb, 0x05, 0xb8, 2, 0, 0, 0, 0x0f, 0x05], 16, "rax"), [C(1), C(2)]);
  assert.deepEqual(await flow("x86_64", [0x48, 0x89, 0xf8, 0x0f, 0x05], 3, "rax"), [{ kind: "arg", index: 0 }]); // mov rax, rdi: syscall()
  const mem = await flow("x86_64", [0x8b, 0x07, 0x0f, 0x05], 2, "rax"); // mov eax, [rdi]
  assert.equal(mem.length, 1);
  assert.equal(mem[0]!.kind, "unknown");
  const call = await flow("x86_64", [0xb8, 1, 0, 0, 0, 0xe8, 0, 0, 0, 0, 0x0f, 0x05], 10, "rax"); // mov eax,1; call; syscall
  assert.deepEqual(call, [{ kind: "unknown", reason: "set by a call" }]);
  // call site of syscall(): mov edi, 186; call → the argument register holds 186
  assert.deepEqual(await flow("x86_64", [0xbf, 0xba, 0, 0, 0, 0x31, 0xc0, 0xe8, 0, 0, 0, 0], 7, "rdi"), [C(186)]);
});

function a64(...words: number[]): Buffer {
  const b = Buffer.alloc(words.length * 4);
  words.forEach((w, i) => b.writeUInt32LE(w >>> 0, i * 4));
  return b;
}
const SVC0 = 0xd4000001;

test("aarch64 data flow: mov to x8/w8, register moves, arguments, call clobbers", async () => {
  assert.deepEqual(await flow("aarch64", a64(0xd2800708, SVC0), 4, "x8"), [C(56)]); // mov x8, #0x38 (openat)
  assert.deepEqual(await flow("aarch64", a64(0x52800ba8, SVC0), 4, "x8"), [C(93)]); // mov w8, #0x5d (exit)
  assert.deepEqual(await flow("aarch64", a64(0xd2800ba1, 0xaa0103e8, SVC0), 8, "x8"), [C(93)]); // mov x1,#93; mov x8,x1
  assert.deepEqual(await flow("aarch64", a64(0x2a0003e8, SVC0), 4, "x8"), [{ kind: "arg", index: 0 }]); // mov w8, w0
  assert.deepEqual(await flow("aarch64", a64(0xd2800028, 0x94000000, SVC0), 8, "x8"), [{ kind: "unknown", reason: "set by a call" }]); // mov x8,#1; bl; svc
  // cbz x0, L; mov x8,#1; b S; L: mov x8,#2; S: svc
  assert.deepEqual(await flow("aarch64", a64(0xb4000060, 0xd2800028, 0x14000002, 0xd2800048, SVC0), 16, "x8"), [C(1), C(2)]);
});
