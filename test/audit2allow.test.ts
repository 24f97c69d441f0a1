// `pg_seccomp audit2allow` at the level the CLI calls it: audit2allow(file, options, io) on the
// fixtures recorded from real runs (test/fixtures/audit/README.txt says how), with the same
// chunked file reader the CLI uses; and, once the command is wired into the CLI, the CLI itself.

import { test } from "node:test";
import assert from "node:assert/strict";
import { readChunks } from "../src/cli/read-chunks.js";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { repoPath } from "./support/paths.js";
import { audit2allow, DEFAULT_AUDIT_LOG, type Audit2allowIO, type Audit2allowOptions } from "../src/cli/audit2allow.js";
import type { AuditReport } from "../src/learn/audit.js";
import { loadPolicyFile } from "../src/policy/policy.js";
import { compilePolicy } from "../src/compile/compile.js";

const FIX = repoPath("test/fixtures/audit");
const fixture = (name: string) => join(FIX, name);
const expected = (name: string) => readFileSync(join(FIX, "expected", name), "utf8");

/** The CLI's own reader. */
const fsIO: Audit2allowIO = { read: readChunks };

function run(file: string | undefined, opts: Audit2allowOptions = {}, io: Audit2allowIO = fsIO) {
  return audit2allow(file, opts, io);
}
function report(file: string, opts: Audit2allowOptions = {}): AuditReport {
  const r = run(file, { ...opts, json: true });
  assert.equal(r.exitCode, 0, r.stderr);
  return JSON.parse(r.stdout) as AuditReport;
}
/** An io whose files are strings (and "-" is standard input). */
function textIO(files: Record<string, string>, chunk = 4096): Audit2allowIO & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    *read(file: string) {
      asked.push(file);
      const text = files[file];
      if (text === undefined) throw Object.assign(new Error(`ENOENT: no such file or directory, open '${file}'`), { code: "ENOENT" });
      const bytes = Buffer.from(text);
      for (let i = 0; i < bytes.length; i += chunk) yield bytes.subarray(i, i + chunk);
    },
  };
}

test("every fixture gives the list the seed's get_syscalls.sh way of listing gives (postgres processes)", () => {
  const cases: Array<[string, string]> = [
    ["dmesg-postgres.txt", "dmesg-postgres.list"],
    ["audit.log.txt", "audit.log.list"],
    ["ausearch-raw.txt", "ausearch-raw.list"],
    ["ausearch-interpreted.txt", "ausearch-raw.list"], // names, not numbers: the same list
    ["journal-kernel.txt", "journal-kernel.list"],
    ["journal-audit.txt", "journal-audit.list"],
  ];
  for (const [file, list] of cases) {
    const r = run(fixture(file));
    assert.equal(r.exitCode, 0, `${file}: ${r.stderr}`);
    assert.equal(r.stdout, expected(list), file);
    assert.doesNotMatch(r.stderr, /malformed/, file);
  }
  // The two full postgres runs (kernel log, auditd) used the same syscalls.
  assert.equal(expected("dmesg-postgres.list"), expected("audit.log.list"));
});

test("--all: every process; i386 and x32 calls are left out (get_syscalls.sh turned them into writev and UNKNOWN)", () => {
  const r = run(fixture("audit.log.txt"), { all: true });
  assert.equal(r.exitCode, 0);
  const seed = expected("audit.log.get_syscalls-all.txt").trim().split(",");
  assert.deepEqual(r.stdout.trim().split(","), seed.filter((n) => n !== "UNKNOWN" && n !== "writev"));
  assert.match(r.stderr, /warning: 2 records of calls through the i386 or x32 ABI .*\(x32 #1073741863, i386 #20\)/);
  assert.match(r.stderr, /note: 5 syscalls of the list were denied when recorded \(clone3, getppid, personality, ptrace, uname\)/);
  const rep = report(fixture("audit.log.txt"), { all: true });
  assert.equal(rep.counts.kept, 2494);
  assert.equal(rep.counts.foreignAbiRecords, 2);
  assert.deepEqual(rep.actions, { LOG: 2487, KILL_PROCESS: 1, KILL_THREAD: 1, ERRNO: 2, TRAP: 1, USER_NOTIF: 1, TRACE: 1 });
});

test("the records of each fixture, counted", () => {
  const a = report(fixture("audit.log.txt"));
  assert.deepEqual(a.counts, {
    lines: 2504, seccompRecords: 2494, kept: 2483, filteredOut: 11, filteredOutByProcess: 11, filteredOutByArch: 0,
    malformedLines: 0, otherRecords: 10, otherLines: 0, unknownSyscallRecords: 0, foreignAbiRecords: 0,
  });
  assert.deepEqual(a.otherRecordTypes, { DAEMON_START: 1, CONFIG_CHANGE: 1, LOGIN: 1, SYSCALL: 2, PROCTITLE: 2, ANOM_ABEND: 2, DAEMON_END: 1 });
  assert.deepEqual(a.processesSeen, [{ comm: "postgres", exe: "/usr/lib/postgresql/15/bin/postgres", records: 2483, pids: 10, syscalls: 63 }]);
  assert.deepEqual(a.otherProcesses.map((p) => [p.comm, p.records, p.pids]), [["seccomp probe", 10, 9], ["node", 1, 1]]);
  assert.deepEqual(a.forms, { audit: 2494 });
  const d = report(fixture("dmesg-postgres.txt"));
  assert.equal(d.counts.seccompRecords, 2487);
  assert.equal(d.counts.kept, 2476);
  assert.deepEqual(d.forms, { kernel: 2487 });
  assert.equal(d.timeRange?.first.slice(0, 19), "2026-11-28T15:44:26");
  const ar = report(fixture("ausearch-raw.txt"));
  const ai = report(fixture("ausearch-interpreted.txt"));
  assert.equal(ar.counts.kept, 267);
  assert.equal(ai.counts.kept, 267);
  assert.equal(ar.counts.otherLines, 534, "---- and time-> lines");
  assert.deepEqual(ai.syscalls.map((s) => [s.syscall, s.records]), ar.syscalls.map((s) => [s.syscall, s.records]));
  assert.deepEqual(ai.timeRange, { first: "11/28/26 15:44:51.665", last: "11/28/26 15:44:51.673" });
  assert.deepEqual(ar.timeRange, { first: "2026-11-28T15:44:51.665Z", last: "2026-11-28T15:44:51.673Z" });
  const j = report(fixture("journal-json.txt"), { all: true });
  assert.equal(j.counts.kept, 10);
  assert.deepEqual(j.forms, { "journal-json": 10 });
  assert.deepEqual(j.allow, { x86_64: ["clone3", "getcwd", "getpgrp", "getppid", "personality", "ptrace", "sysinfo", "uname"] });
  assert.equal(report(fixture("journal-json.txt")).counts.kept, 0, "the probes are not postgres");
});

test("malformed and irrelevant lines are counted, reported with line numbers, never fatal", () => {
  const r = run(fixture("mixed.txt"));
  assert.equal(r.exitCode, 0);
  assert.equal(r.stdout, "brk,mmap,recvfrom,socket\n");
  assert.match(r.stderr, /^pg_seccomp: note: skipped 6 malformed lines \(lines 9, 10, 14, 15, 18, \.\.\.\): /m);
  assert.match(r.stderr, /left out 1 record of processes other than postgres processes \(seccomp probe: 1\)/);
  const rep = report(fixture("mixed.txt"));
  assert.deepEqual(rep.counts, {
    lines: 22, seccompRecords: 5, kept: 4, filteredOut: 1, filteredOutByProcess: 1, filteredOutByArch: 0,
    malformedLines: 6, otherRecords: 4, otherLines: 7, unknownSyscallRecords: 0, foreignAbiRecords: 0,
  });
  assert.deepEqual(rep.malformedLineNumbers, [9, 10, 14, 15, 18, 20]);
  assert.deepEqual(rep.otherRecordTypes, { "1300": 1, "1305": 1, DAEMON_START: 1, ANOM_ABEND: 1 });
  assert.deepEqual(rep.forms, { kernel: 2, audit: 1, journal: 1, "audit-interpreted": 1 });
  // A file of nothing but noise: an empty list, a note, exit 0 (the seed's "output should be empty").
  const empty = run("x", {}, textIO({ x: "hello\n\n----\n" }));
  assert.deepEqual([empty.stdout, empty.exitCode], ["\n", 0]);
  assert.match(empty.stderr, /x holds no SECCOMP records \(3 lines read\)/);
});

test("--comm, --exe, --all choose the processes", () => {
  const f = fixture("dmesg-postgres.txt");
  const pg = expected("dmesg-postgres.list").trim();
  assert.equal(run(f, { comm: ["node"] }).stdout, "execve\n");
  assert.equal(run(f, { exe: ["/usr/bin/node"] }).stdout, "execve\n");
  assert.equal(run(f, { exe: ["node"] }).stdout, "execve\n", "a file name matches the exe's last component");
  assert.equal(run(f, { exe: "/usr/lib/postgresql/15/bin/postgres" }).stdout, pg + "\n");
  assert.equal(run(f, { comm: ["postgres", "node"] }).stdout, sortedUnion(pg, "execve"));
  assert.equal(run(f, { comm: "postgres,node" }).stdout, sortedUnion(pg, "execve"), "comma-separated");
  const probes = run(f, { comm: ["seccomp probe"] });
  assert.equal(probes.stdout, "clone3,getcwd,getpgrp,getppid,personality,ptrace,sysinfo,uname\n", "a hex-encoded comm");
  assert.match(probes.stderr, /i386 or x32 ABI/);
  const all = run(f, { all: true });
  assert.equal(all.stdout, sortedUnion(pg, "execve", "clone3", "getcwd", "getpgrp", "getppid", "personality", "ptrace", "sysinfo", "uname"));
  assert.doesNotMatch(all.stderr, /left out/);
  const both = run(f, { all: true, comm: ["node"] });
  assert.equal(both.exitCode, 2);
  assert.match(both.stderr, /--all keeps every process/);
  // --arch
  const arm = run(f, { arch: "aarch64" });
  assert.deepEqual([arm.stdout, arm.exitCode], ["\n", 0]);
  assert.match(arm.stderr, /left out 2476 records of arches other than aarch64/);
  assert.equal(run(f, { arch: "x86_64" }).stdout, pg + "\n");
  assert.equal(run(f, { arch: "sparc" }).exitCode, 2);
  assert.equal(run(f, { format: "yaml" }).exitCode, 2);
});

function sortedUnion(list: string, ...more: string[]): string {
  const names = [...new Set([...list.split(","), ...more])];
  return names.sort((a, b) => {
    const ka = a.replace(/_/g, "");
    const kb = b.replace(/_/g, "");
    return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  }).join(",") + "\n";
}

test("--format policy: a snippet the policy loader accepts, with a header", () => {
  const r = run(fixture("audit.log.txt"), { format: "policy" });
  assert.equal(r.exitCode, 0);
  const lines = r.stdout.trimEnd().split("\n");
  assert.equal(lines[0], "# pg_seccomp audit2allow: the syscalls that SECCOMP audit records name");
  assert.ok(lines.includes(`# source: ${fixture("audit.log.txt")}`));
  assert.ok(lines.includes("# records: 2494 SECCOMP; kept 2483 (postgres processes); filtered out 11; malformed lines 0; other audit records 10"));
  assert.ok(lines.includes("# time: 2026-11-28T15:44:51.513Z .. 2026-11-28T15:44:51.685Z"));
  assert.ok(lines.includes("# processes: postgres (/usr/lib/postgresql/15/bin/postgres): 2483 records, 10 pids"));
  assert.ok(lines.includes("# actions: LOG 2483"));
  const allow = lines.filter((l) => /^global_syscall_allow = /.test(l));
  assert.deepEqual(allow, [`global_syscall_allow = '${expected("audit.log.list").trim().split(",").join(", ")}'`]);
  // It loads and compiles as a policy.
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-audit2allow-"));
  const path = join(dir, "learned.conf");
  writeFileSync(path, "global_syscall_default = 'log'\n" + r.stdout);
  const policy = loadPolicyFile(path);
  assert.ok(compilePolicy(policy, "x86_64", { context: "global" }).length > 10);
  // With denied records, a comment says which.
  const probes = run(fixture("ausearch-probes.txt"), { all: true, format: "policy" });
  assert.match(probes.stdout, /^# denied when recorded \(review before allowing\): clone3, getppid, personality, ptrace, uname$/m);
  assert.match(probes.stdout, /^# not listed: .*i386 #20 \(1 record\)/m);
});

test("records of two arches: list asks for --arch, policy gives a line per arch", () => {
  const x86 = readFileSync(fixture("journal-kernel.txt"), "utf8");
  // A built aarch64 record (there is no aarch64 machine here): openat is 56 there.
  const arm = 'Nov 28 15:50:00 arm kernel: audit: type=1326 audit(1795881000.000:1): auid=4294967295 uid=101 gid=104 ses=4294967295 pid=77 comm="postgres" exe="/usr/lib/postgresql/15/bin/postgres" sig=0 arch=c00000b7 syscall=56 compat=0 ip=0xffff8000 code=0x7ffc0000\n';
  const io = textIO({ both: x86 + arm });
  const list = run("both", {}, io);
  assert.equal(list.exitCode, 1);
  assert.match(list.stderr, /several arches \(x86_64: 30 syscalls, aarch64: 1 syscall\); choose one with --arch/);
  assert.equal(run("both", { arch: "aarch64" }, io).stdout, "openat\n");
  assert.equal(run("both", { arch: "x86_64" }, io).stdout, expected("journal-kernel.list"));
  const policy = run("both", { format: "policy" }, io).stdout;
  assert.match(policy, /^global_syscall_allow = 'access, brk, /m);
  assert.match(policy, /^# global_syscall_allow = 'openat'$/m);
});

test("--stats: psql tables of counts", () => {
  const r = run(fixture("audit.log.txt"), { stats: true });
  assert.equal(r.exitCode, 0);
  assert.match(r.stdout, /^ lines read {2,}\| {2}2504$/m);
  assert.match(r.stdout, /^ SECCOMP records {2,}\| {2}2494$/m);
  assert.match(r.stdout, /^ kept \(postgres processes\) +\| {2}2483$/m);
  assert.match(r.stdout, /^ filtered out: other processes +\| +11$/m);
  assert.match(r.stdout, /^ skipped: malformed lines +\| +0$/m);
  assert.match(r.stdout, /^ ignored: other audit records +\| +10$/m);
  assert.match(r.stdout, /^ +syscall +\| syscallnum \| {2}arch {2}\| records \| pids \| actions$/m);
  assert.match(r.stdout, /^ openat +\| +257 \| x86_64 \| +298 \| +8 \| LOG$/m, "the most frequent first");
  assert.match(r.stdout, /^ postgres \| \/usr\/lib\/postgresql\/15\/bin\/postgres \| +2483 \| +10 \| +63$/m);
  assert.match(r.stdout, /^\(63 rows\)$/m);
  assert.match(r.stdout, /^Filtered out \(other processes\)$/m);
  const mixed = run(fixture("mixed.txt"), { stats: true }).stdout;
  assert.match(mixed, /^ skipped: malformed lines +\| +6$/m);
});

test("standard input, the default file, unreadable files", () => {
  const text = readFileSync(fixture("journal-kernel.txt"), "utf8");
  const io = textIO({ "-": text }, 100);
  const r = run("-", {}, io);
  assert.equal(r.stdout, expected("journal-kernel.list"));
  assert.deepEqual(io.asked, ["-"]);
  assert.equal((JSON.parse(run("-", { json: true }, io).stdout) as AuditReport).source, "standard input");
  // no FILE: the seed's /var/log/audit/audit.log
  const def = textIO({ [DEFAULT_AUDIT_LOG]: readFileSync(fixture("audit.log.txt"), "utf8") });
  assert.equal(run(undefined, {}, def).stdout, expected("audit.log.list"));
  assert.deepEqual(def.asked, [DEFAULT_AUDIT_LOG]);
  const missing = run(undefined, {}, textIO({}));
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /^pg_seccomp: error: cannot read \/var\/log\/audit\/audit.log: no such file \(is auditd installed/);
  const nofile = run("/nonexistent/audit.log");
  assert.equal(nofile.exitCode, 1);
  assert.match(nofile.stderr, /cannot read \/nonexistent\/audit.log: no such file/);
  const dir = run(FIX);
  assert.equal(dir.exitCode, 1);
  assert.match(dir.stderr, /cannot read .*: it is a directory/);
});

test("real standard input, through the CLI's reader", () => {
  const lib = pathToFileURL(repoPath("dist/src/cli/audit2allow.js")).href;
  const reader = pathToFileURL(repoPath("dist/src/cli/read-chunks.js")).href;
  const script = `
    import { audit2allow } from ${JSON.stringify(lib)};
    import { readChunks } from ${JSON.stringify(reader)};
    const r = audit2allow("-", {}, { read: readChunks });
    process.stdout.write(r.stdout); process.stderr.write(r.stderr); process.exitCode = r.exitCode;`;
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { input: readFileSync(fixture("dmesg-postgres.txt")), encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, expected("dmesg-postgres.list"));
});

const BIN = repoPath("dist/src/cli/main.js");
const cliHasCommand = (() => {
  try {
    return readFileSync(BIN, "utf8").includes("audit2allow");
  } catch {
    return false;
  }
})();

test("pg_seccomp audit2allow (the CLI)", { skip: cliHasCommand ? false : "the CLI has no audit2allow command yet" }, () => {
  const cli = (args: string[], input?: Buffer) => spawnSync(process.execPath, [BIN, "audit2allow", ...args], { encoding: "utf8", ...(input ? { input } : {}) });
  const file = cli([fixture("audit.log.txt")]);
  assert.equal(file.status, 0, file.stderr);
  assert.equal(file.stdout, expected("audit.log.list"));
  const stdin = cli(["-"], readFileSync(fixture("ausearch-interpreted.txt")));
  assert.equal(stdin.status, 0, stdin.stderr);
  assert.equal(stdin.stdout, expected("ausearch-raw.list"));
  const mixed = cli([fixture("mixed.txt"), "--comm", "seccomp probe", "--comm", "postgres"]);
  assert.equal(mixed.stdout, "brk,mmap,personality,recvfrom,socket\n");
  assert.match(mixed.stderr, /skipped 6 malformed lines/);
  const policy = cli([fixture("dmesg-postgres.txt"), "--format", "policy"]);
  assert.match(policy.stdout, /^global_syscall_allow = 'accept, access, /m);
  const json = cli([fixture("dmesg-postgres.txt"), "--json", "--all"]);
  assert.equal((JSON.parse(json.stdout) as AuditReport).counts.kept, 2487);
  const bad = cli([fixture("mixed.txt"), "--format", "yaml"]);
  assert.equal(bad.status, 2);
  assert.match(cli(["--help"]).stdout, /--comm <name>/);
});
