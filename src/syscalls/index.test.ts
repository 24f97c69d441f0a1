import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  ARCHES,
  allSyscalls,
  editDistance,
  hostArch,
  isArch,
  maxSyscallNumber,
  resolveSyscall,
  suggestNames,
  syscallName,
  syscallNames,
  syscallNumber,
  syscallReplacements,
  syscallTableInfo,
  SYSCALL_REPLACEMENTS,
  type Arch,
} from "./index.js";

describe("arch helpers", () => {
  it("lists the supported arches", () => {
    assert.deepEqual([...ARCHES], ["x86_64", "aarch64"]);
    assert.ok(isArch("x86_64") && isArch("aarch64"));
    assert.ok(!isArch("x64") && !isArch("arm64") && !isArch(""));
  });

  it("maps Node's process.arch to kernel arch names", () => {
    assert.equal(hostArch("x64"), "x86_64");
    assert.equal(hostArch("arm64"), "aarch64");
    assert.ok(ARCHES.includes(hostArch()) || !["x64", "arm64"].includes(process.arch));
  });

  it("throws a clear error for unsupported arches", () => {
    assert.throws(() => hostArch("ia32"), /unsupported architecture "ia32".*x86_64.*aarch64/);
    assert.throws(() => hostArch("riscv64"), /unsupported architecture/);
  });
});

describe("x86_64 table", () => {
  const known: Array<[string, number]> = [
    ["read", 0],
    ["write", 1],
    ["open", 2],
    ["stat", 4],
    ["mmap", 9],
    ["ioctl", 16],
    ["select", 23],
    ["socket", 41],
    ["fork", 57],
    ["execve", 59],
    ["exit", 60],
    ["uselib", 134],
    ["_sysctl", 156],
    ["security", 185],
    ["exit_group", 231],
    ["openat", 257],
    ["newfstatat", 262],
    ["seccomp", 317],
    ["rseq", 334],
    ["uretprobe", 335],
    ["pidfd_open", 434],
    ["clone3", 435],
    ["landlock_create_ruleset", 444],
    ["mseal", 462],
    ["file_getattr", 468],
    ["file_setattr", 469],
  ];
  for (const [name, nr] of known) {
    it(`${name} = ${nr} (both directions)`, () => {
      assert.equal(syscallNumber("x86_64", name), nr);
      assert.equal(syscallName("x86_64", nr), name);
    });
  }

  it("does not contain x32 rows", () => {
    assert.ok(allSyscalls("x86_64").every((e) => e.nr < 512));
    assert.equal(syscallName("x86_64", 512), undefined);
    assert.equal(syscallNumber("x86_64", "rt_sigaction"), 13);
  });

  it("has unassigned gaps", () => {
    assert.equal(syscallName("x86_64", 400), undefined);
    assert.equal(syscallName("x86_64", -1), undefined);
    assert.equal(syscallName("x86_64", 1.5), undefined);
  });
});

describe("aarch64 table", () => {
  const known: Array<[string, number]> = [
    ["io_setup", 0],
    ["getcwd", 17],
    ["ioctl", 29],
    ["renameat", 38],
    ["openat", 56],
    ["close", 57],
    ["getdents64", 61],
    ["lseek", 62],
    ["read", 63],
    ["write", 64],
    ["pselect6", 72],
    ["ppoll", 73],
    ["newfstatat", 79],
    ["fstat", 80],
    ["exit", 93],
    ["exit_group", 94],
    ["getrlimit", 163],
    ["setrlimit", 164],
    ["socket", 198],
    ["clone", 220],
    ["execve", 221],
    ["mmap", 222],
    ["wait4", 260],
    ["seccomp", 277],
    ["clone3", 435],
    ["memfd_secret", 447],
    ["file_setattr", 469],
  ];
  for (const [name, nr] of known) {
    it(`${name} = ${nr} (both directions)`, () => {
      assert.equal(syscallNumber("aarch64", name), nr);
      assert.equal(syscallName("aarch64", nr), name);
    });
  }

  it("lacks the legacy calls of x86_64", () => {
    for (const name of ["open", "stat", "lstat", "select", "poll", "fork", "vfork", "pipe", "dup2", "access", "epoll_wait", "getdents", "creat", "unlink"]) {
      assert.equal(syscallNumber("aarch64", name), undefined, name);
    }
  });

  it("has no 32-bit-only rows of the generic table", () => {
    for (const name of ["fcntl64", "llseek", "mmap2", "fstatat64", "clock_gettime64", "futex_time64", "statfs64"]) {
      assert.equal(syscallNumber("aarch64", name), undefined, name);
    }
  });

  it("has no other arch's private syscalls", () => {
    for (const name of ["riscv_hwprobe", "riscv_flush_icache", "cacheflush", "or1k_atomic", "arc_settls", "set_thread_area"]) {
      assert.equal(syscallNumber("aarch64", name), undefined, name);
    }
  });
});

describe("table shape", () => {
  for (const arch of ARCHES) {
    it(`${arch}: sorted by number, unique names and numbers, consistent lookups`, () => {
      const all = allSyscalls(arch);
      assert.ok(all.length > 300);
      const names = new Set<string>();
      for (let i = 0; i < all.length; i++) {
        const e = all[i]!;
        if (i > 0) assert.ok(all[i - 1]!.nr < e.nr, `not sorted at ${e.name}`);
        assert.ok(!names.has(e.name), `duplicate ${e.name}`);
        names.add(e.name);
        assert.equal(syscallNumber(arch, e.name), e.nr);
        assert.equal(syscallName(arch, e.nr), e.name);
        assert.ok(/^[a-z_][a-z0-9_]*$/.test(e.name), e.name);
      }
      assert.equal(maxSyscallNumber(arch), all[all.length - 1]!.nr);
      assert.deepEqual([...syscallNames(arch)], [...names].sort());
    });

    it(`${arch}: table info names the kernel source`, () => {
      const info = syscallTableInfo(arch);
      assert.equal(info.arch, arch);
      assert.match(info.kernelVersion, /^v6\.\d+/);
      assert.equal(info.count, allSyscalls(arch).length);
      assert.equal(info.maxNr, maxSyscallNumber(arch));
      assert.ok(info.abis.includes("common") && info.abis.includes("64"));
      assert.ok(!info.abis.includes("x32") && !info.abis.includes("32"));
    });
  }

  it("both tables end at the same newest syscall", () => {
    assert.equal(maxSyscallNumber("x86_64"), 469);
    assert.equal(maxSyscallNumber("aarch64"), 469);
  });

  it("rejects lookups for unsupported arches", () => {
    assert.throws(() => syscallNumber("i386" as Arch, "read"), /unsupported architecture/);
  });
});

describe("resolveSyscall", () => {
  it("resolves names that exist", () => {
    assert.deepEqual(resolveSyscall("x86_64", "openat"), { ok: true, nr: 257 });
    assert.deepEqual(resolveSyscall("aarch64", "openat"), { ok: true, nr: 56 });
  });

  it("explains names that exist only on another arch, with replacements", () => {
    const r = resolveSyscall("aarch64", "stat");
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.match(r.message, /^syscall "stat" does not exist on aarch64 \(it exists on x86_64\)/);
    assert.match(r.message, /use "newfstatat" or "statx" instead$/);

    const cases: Array<[string, string]> = [
      ["open", "openat"],
      ["lstat", "newfstatat"],
      ["select", "pselect6"],
      ["poll", "ppoll"],
      ["fork", "clone"],
      ["pipe", "pipe2"],
      ["dup2", "dup3"],
      ["epoll_wait", "epoll_pwait"],
      ["getdents", "getdents64"],
      ["access", "faccessat"],
      ["unlink", "unlinkat"],
      ["rename", "renameat2"],
    ];
    for (const [name, alt] of cases) {
      const res = resolveSyscall("aarch64", name);
      assert.ok(!res.ok, name);
      assert.match(res.message, new RegExp(`^syscall "${name}" does not exist on aarch64 \\(it exists on x86_64\\)`));
      assert.ok(res.message.includes(`"${alt}"`), `${name}: ${res.message}`);
    }
  });

  it("explains x86_64-only names without a replacement", () => {
    const r = resolveSyscall("aarch64", "arch_prctl");
    assert.ok(!r.ok);
    assert.equal(r.message, `syscall "arch_prctl" does not exist on aarch64 (it exists on x86_64)`);
  });

  it("offers only replacements that exist on the target arch", () => {
    for (const arch of ARCHES) {
      for (const name of Object.keys(SYSCALL_REPLACEMENTS)) {
        for (const alt of syscallReplacements(arch, name)) assert.notEqual(syscallNumber(arch, alt), undefined, `${arch} ${name} -> ${alt}`);
      }
    }
  });

  it("explains 32-bit-ABI names", () => {
    const r = resolveSyscall("x86_64", "mmap2");
    assert.ok(!r.ok);
    assert.match(r.message, /^syscall "mmap2" does not exist on x86_64/);
    assert.match(r.message, /use "mmap" instead$/);
    const t = resolveSyscall("aarch64", "clock_gettime64");
    assert.ok(!t.ok);
    assert.match(t.message, /use "clock_gettime" instead$/);
  });

  it("suggests close names for typos", () => {
    const r = resolveSyscall("x86_64", "opennat");
    assert.ok(!r.ok);
    assert.equal(r.message, `unknown syscall "opennat"; did you mean "openat"?`);

    const t = resolveSyscall("aarch64", "epoll_pwiat");
    assert.ok(!t.ok);
    assert.match(t.message, /did you mean "epoll_pwait"\?$/);

    const c = resolveSyscall("x86_64", "OPENAT");
    assert.ok(!c.ok);
    assert.match(c.message, /did you mean "openat"\?$/);
  });

  it("does not suggest far-away names", () => {
    const r = resolveSyscall("x86_64", "frobnicate_widget");
    assert.ok(!r.ok);
    assert.match(r.message, /^unknown syscall "frobnicate_widget"/);
    assert.doesNotMatch(r.message, /did you mean/);
  });

  it("flags group names and malformed names", () => {
    const g = resolveSyscall("x86_64", "@file-system");
    assert.ok(!g.ok);
    assert.match(g.message, /is a syscall group/);
    const m = resolveSyscall("x86_64", "no such thing!");
    assert.ok(!m.ok);
    assert.match(m.message, /invalid syscall name/);
  });
});

describe("suggestNames", () => {
  const names = ["openat", "openat2", "open", "read", "readv", "close"];

  it("returns the best 1-3 close candidates, best first", () => {
    assert.deepEqual(suggestNames(names, "opnat"), ["openat"]);
    assert.deepEqual(suggestNames(names, "raed"), ["read"]);
    assert.deepEqual(suggestNames(["aa1", "aa2", "aa3", "aa4"], "aa"), ["aa1", "aa2", "aa3"]);
    assert.deepEqual(suggestNames(["aa1", "aa2", "aa3", "aa4"], "aa", 1), ["aa1"]);
  });

  it("returns nothing when nothing is close, or for exact matches", () => {
    assert.deepEqual(suggestNames(names, "xyzzy"), []);
    assert.deepEqual(suggestNames(names, ""), []);
    assert.deepEqual(suggestNames(["read"], "read"), []);
  });

  it("ignores case and dash/underscore differences", () => {
    assert.deepEqual(suggestNames(["epoll_wait"], "EPOLL-WAIT"), ["epoll_wait"]);
    assert.deepEqual(suggestNames(["@file-system", "@system-service"], "@file_system"), ["@file-system"]);
  });

  it("works for any candidate list (settings, groups)", () => {
    assert.deepEqual(suggestNames(new Set(["log_level", "enabled", "default_action"]), "log_levle"), ["log_level"]);
  });

  it("editDistance counts edits and transpositions", () => {
    assert.equal(editDistance("", "abc"), 3);
    assert.equal(editDistance("abc", "abc"), 0);
    assert.equal(editDistance("abc", "acb"), 1);
    assert.equal(editDistance("kitten", "sitting"), 3);
    assert.equal(editDistance("opennat", "openat"), 1);
  });
});
