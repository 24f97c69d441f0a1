// The /proc parsers and the reader, with what a process can put in its own fields: a comm with
// ")", spaces and newlines, a title with NULs, and files cut short.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  descendants, maskHas, parseProcStat, readChildren, parseProcStatus, procReader, readProcessTree, readProcStat, readStartTime, readTitle, readYamaPtraceScope, titleFromCmdline,
} from "./proc.js";

const STATUS = `Name:\tpostgres
Umask:\t0077
State:\tS (sleeping)
Tgid:\t4242
Pid:\t4242
PPid:\t4200
TracerPid:\t0
Uid:\t101\t101\t101\t101
Gid:\t104\t104\t104\t104
Threads:\t1
CapEff:\t0000000000000000
NoNewPrivs:\t1
Seccomp:\t2
Seccomp_filters:\t1
Speculation_Store_Bypass:\tthread force mitigated
SpeculationIndirectBranch:\tconditional enabled
`;

test("/proc/PID/status", () => {
  const s = parseProcStatus(STATUS);
  assert.deepEqual(s, {
    name: "postgres",
    ppid: 4200,
    tgid: 4242,
    uid: 101,
    threads: 1,
    noNewPrivs: true,
    seccomp: 2,
    seccompMode: "filter",
    seccompFilters: 1,
    speculationStoreBypass: "thread force mitigated",
    capEff: 0n,
    sigBlk: null,
    sigIgn: null,
    sigCgt: null,
  });
  const plain = parseProcStatus("Name:\tsleep\nNoNewPrivs:\t0\nSeccomp:\t0\nSeccomp_filters:\t0\nCapEff:\t000001ffffffffff\n");
  assert.deepEqual([plain.noNewPrivs, plain.seccompMode, plain.seccompFilters, plain.capEff], [false, "disabled", 0, 0x1ffffffffffn]);
  assert.equal(parseProcStatus("Seccomp:\t1\n").seccompMode, "strict");
  // Old kernels: no Seccomp_filters line; no seccomp support: no Seccomp line.
  const old = parseProcStatus("Name:\tx\n");
  assert.deepEqual([old.seccomp, old.seccompMode, old.seccompFilters, old.noNewPrivs, old.speculationStoreBypass], [null, null, null, null, null]);
});

test("/proc/PID/stat, descendants", () => {
  assert.deepEqual(parseProcStat("4243 (postgres) S 4242 4242 4242 0 -1 4194560 ..."), { pid: 4243, comm: "postgres", state: "S", ppid: 4242 });
  assert.deepEqual(parseProcStat("77 (a) b (c)) R 1 77 77"), { pid: 77, comm: "a) b (c)", state: "R", ppid: 1 });
  assert.equal(parseProcStat("garbage"), undefined);
  const tree = new Map([
    [1, 0],
    [10, 1],
    [11, 10],
    [12, 10],
    [13, 12],
    [20, 1],
    [14, 11],
  ]);
  assert.deepEqual(descendants(10, tree), [11, 12, 14, 13]);
  assert.deepEqual(descendants(20, tree), []);
});


test("/proc/PID/stat: whatever comm holds, the fields after it stay put", () => {
  const tail = "S 807 807 807 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10 18446744073709551615";
  for (const comm of ["postgres", "a) b", ") S 1 1 1", "x\n) R 2 ", "((", ")", "", "  spaced  ", "evil) S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 999"]) {
    const st = parseProcStat(`4242 (${comm}) ${tail}`);
    assert.deepEqual(st, { pid: 4242, comm, state: "S", ppid: 807, start: "123456" }, JSON.stringify(comm));
  }
});

test("/proc/PID/stat: truncated or garbage text", () => {
  assert.equal(parseProcStat(""), undefined);
  assert.equal(parseProcStat("4242 (postgres"), undefined);
  assert.equal(parseProcStat("4242 (postgres)"), undefined);
  assert.equal(parseProcStat("4242 (postgres) "), undefined);
  assert.equal(parseProcStat("x (postgres) S 1"), undefined);
  assert.equal(parseProcStat("4242 (postgres) S notanumber"), undefined);
  // Cut before starttime: the other fields, and no start time.
  assert.deepEqual(parseProcStat("4242 (postgres) S 807 807"), { pid: 4242, comm: "postgres", state: "S", ppid: 807 });
  assert.equal(parseProcStat("4242 (p) S 807 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 12x4")?.start, undefined);
});

test("/proc/PID/status: signal masks, and a Name that tries to add fields", () => {
  const s = parseProcStatus("Name:\tpostgres\nThreads:\t1\nSigBlk:\t0000000000000000\nSigIgn:\t0000000001001000\nSigCgt:\t0000000040000000\n");
  assert.equal(s.sigBlk, 0n);
  assert.equal(maskHas(s.sigIgn, 13), true); // SIGPIPE
  assert.equal(maskHas(s.sigCgt, 31), true); // SIGSYS
  assert.equal(maskHas(s.sigBlk, 31), false);
  assert.equal(maskHas(null, 31), true, "an unknown mask counts as set");
  // The kernel escapes a newline in Name; were it not to, the first field of a name still wins.
  const forged = parseProcStatus("Name:\tx\nSeccomp:\t0\nSeccomp:\t2\nSigCgt:\tzz\n");
  assert.equal(forged.seccomp, 0);
  assert.equal(forged.sigCgt, null, "a malformed mask is unknown");
  // Truncated.
  assert.equal(parseProcStatus("Name:\tpostgres\nSecc").seccomp, null);
});

test("cmdline: NULs become spaces, the title is capped", () => {
  assert.equal(titleFromCmdline("postgres: checkpointer   \0\0\0"), "postgres: checkpointer   ");
  assert.equal(titleFromCmdline("sh\0-c\0cp a b\0"), "sh -c cp a b");
  assert.equal(titleFromCmdline("x".repeat(10000)).length, 4096);
  assert.equal(titleFromCmdline("postgres: alice db\n[local] idle"), "postgres: alice db\n[local] idle", "shown as is; never decided on");
});

test("procReader over a copy of /proc", () => {
  const root = mkdtempSync(join(tmpdir(), "pgsc-proc-"));
  try {
    const put = (pid: number, ppid: number, comm: string, extra: Record<string, string> = {}) => {
      mkdirSync(join(root, String(pid), "task", String(pid)), { recursive: true });
      writeFileSync(join(root, String(pid), "stat"), `${pid} (${comm}) S ${ppid} 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 ${5000 + pid} 0 0\n`);
      writeFileSync(join(root, String(pid), "status"), `Name:\t${comm}\nSeccomp:\t2\n`);
      writeFileSync(join(root, String(pid), "task", String(pid), "status"), "Seccomp:\t2\n");
      for (const [k, v] of Object.entries(extra)) writeFileSync(join(root, String(pid), k), v);
    };
    put(1, 0, "init");
    put(100, 1, "postgres", { cmdline: "/usr/bin/postgres\0-D\0/data\0" });
    put(101, 100, "x) S 1 ");
    mkdirSync(join(root, "self"));
    writeFileSync(join(root, "self", "status"), "CapEff:\t000001ffffffffff\n");
    mkdirSync(join(root, "sys"));
    const proc = procReader(root);
    assert.deepEqual([...readProcessTree(proc)].sort((a, b) => a[0] - b[0]), [[1, 0], [100, 1], [101, 100]]);
    assert.equal(readProcStat(101, proc)?.ppid, 100, "a comm that imitates fields does not move the parent");
    assert.equal(readStartTime(101, proc), "5101");
    assert.equal(readTitle(100, proc), "/usr/bin/postgres -D /data");
    assert.equal(readTitle(999, proc), "");
    assert.equal(readProcStat(999, proc), undefined);
    assert.deepEqual(proc.pids(100), ["100"]);
    writeFileSync(join(root, "100", "task", "100", "children"), "101 \n");
    assert.deepEqual(readChildren(100, proc), [101]);
    assert.deepEqual(readChildren(999, proc), [], "gone: no children");
    assert.equal(proc.status(100, 100), "Seccomp:\t2\n");
    assert.match(proc.status("self") ?? "", /CapEff/);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("readYamaPtraceScope: the setting, or undefined where the kernel has no Yama", () => {
  const root = mkdtempSync(join(tmpdir(), "pgsc-yama-"));
  try {
    assert.equal(readYamaPtraceScope(root), undefined);
    mkdirSync(join(root, "sys/kernel/yama"), { recursive: true });
    writeFileSync(join(root, "sys/kernel/yama/ptrace_scope"), "1\n");
    assert.equal(readYamaPtraceScope(root), 1);
    writeFileSync(join(root, "sys/kernel/yama/ptrace_scope"), "x\n");
    assert.equal(readYamaPtraceScope(root), undefined);
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
