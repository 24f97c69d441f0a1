// The pure parts of `status`: process titles, /proc parsing, the kernel's rule for stacked
// filters, the comparison with a policy, and a whole report over a fake /proc.

import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  stmt,
  BPF_RET,
  BPF_K,
  type Insn,
} from "../bpf/insn.js";
import {
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
} from "../seccomp/index.js";
import { actionRet, compilePolicy } from "../compile/compile.js";
import { compose } from "../compile/compose.js";
import { parsePolicyText } from "../policy/policy.js";
import { syscallNumber } from "../syscalls/index.js";
import { decodeStopInfo, decodeWaitStatus } from "../kernel/ptrace.js";
import {
  collectStatus,
  compareFilters,
  describeRetInPolicyTerms,
  describeTitle,
  expectationFor,
  forContext,
  formatStatus,
  parseProcessTitle,
  probesFor,
  stackedVerdicts,
  statusCommand,
  StatusError,
} from "./status.js";

const pad = (s: string, n = 30) => s + "\0".repeat(n);

// ---------------------------------------------------------------------------------------------
// Process titles (as PostgreSQL 15 writes them on Linux: title, a space, NUL padding)

test("process titles: every auxiliary process type", () => {
  const cases: Array<[string, string, string | undefined]> = [
    ["postgres: checkpointer ", "checkpointer", undefined],
    ["postgres: background writer ", "background writer", undefined],
    ["postgres: walwriter ", "walwriter", undefined],
    ["postgres: autovacuum launcher ", "autovacuum launcher", undefined],
    ["postgres: autovacuum worker ", "autovacuum worker", undefined],
    ["postgres: autovacuum worker postgres", "autovacuum worker", "postgres"],
    ["postgres: logical replication launcher ", "logical replication launcher", undefined],
    ["postgres: archiver ", "archiver", undefined],
    ["postgres: archiver last was 000000010000000000000001", "archiver", "last was 000000010000000000000001"],
    ["postgres: startup ", "startup", undefined],
    ["postgres: startup recovering 000000010000000000000003", "startup", "recovering 000000010000000000000003"],
    ["postgres: walreceiver streaming 0/3000148", "walreceiver", "streaming 0/3000148"],
    ["postgres: walsummarizer ", "walsummarizer", undefined],
    ["postgres: logger ", "logger", undefined],
    ["postgres: stats collector ", "stats collector", undefined],
    ["postgres: slotsync worker ", "slotsync worker", undefined],
    ["postgres: io worker 2", "io worker", "2"],
    // PostgreSQL 9.x names
    ["postgres: checkpointer process   ", "checkpointer", undefined],
    ["postgres: writer process   ", "background writer", undefined],
    ["postgres: wal writer process   ", "walwriter", undefined],
    ["postgres: stats collector process   ", "stats collector", undefined],
    ["postgres: bgworker: logical replication launcher   ", "logical replication launcher", undefined],
  ];
  for (const [title, type, activity] of cases) {
    const t = parseProcessTitle(pad(title));
    assert.equal(t.backendType, type, title);
    assert.equal(t.activity, activity, title);
    assert.equal(t.cluster, undefined, title);
    assert.equal(t.title, title.trimEnd());
  }
});

test("process titles: logical replication workers keep their kind", () => {
  assert.equal(parseProcessTitle("postgres: logical replication worker for subscription 16394 ").backendType, "logical replication worker");
  const apply = parseProcessTitle("postgres: logical replication apply worker for subscription 16394 ");
  assert.equal(apply.backendType, "logical replication apply worker");
  assert.equal(apply.activity, "for subscription 16394");
  assert.equal(parseProcessTitle("postgres: logical replication tablesync worker for subscription 16394 sync 16385 ").backendType, "logical replication tablesync worker");
  assert.equal(parseProcessTitle("postgres: logical replication parallel apply worker for subscription 16394 ").backendType, "logical replication parallel apply worker");
});

test("process titles: client backends", () => {
  const t = parseProcessTitle(pad("postgres: postgres postgres [local] idle"));
  assert.deepEqual(t, { title: "postgres: postgres postgres [local] idle", backendType: "client backend", role: "postgres", database: "postgres", client: "[local]", activity: "idle" });
  const tcp = parseProcessTitle("postgres: alice app 10.0.0.7(51234) idle in transaction");
  assert.deepEqual([tcp.backendType, tcp.role, tcp.database, tcp.client, tcp.activity], ["client backend", "alice", "app", "10.0.0.7(51234)", "idle in transaction"]);
  const host = parseProcessTitle("postgres: bob db client.example.com(40000) SELECT");
  assert.equal(host.client, "client.example.com(40000)");
  // update_process_title = off: no activity
  const quiet = parseProcessTitle("postgres: alice app [local]");
  assert.equal(quiet.backendType, "client backend");
  assert.equal(quiet.activity, undefined);
  assert.equal(describeTitle(t), "client backend postgres@postgres [local] idle");
  // A role called "checkpointer" is still a client.
  assert.equal(parseProcessTitle("postgres: checkpointer db [local] idle").backendType, "client backend");
});

test("process titles: walsenders, physical and logical", () => {
  const phys = parseProcessTitle(pad("postgres: walsender postgres [local] streaming 0/2154000"));
  assert.deepEqual([phys.backendType, phys.role, phys.database, phys.client, phys.activity], ["walsender", "postgres", undefined, "[local]", "streaming 0/2154000"]);
  const logical = parseProcessTitle("postgres: walsender repl app 10.1.2.3(5000) START_REPLICATION");
  assert.deepEqual([logical.backendType, logical.role, logical.database, logical.client, logical.activity], ["walsender", "repl", "app", "10.1.2.3(5000)", "START_REPLICATION"]);
  assert.equal(describeTitle(logical), "walsender repl@app 10.1.2.3(5000) START_REPLICATION");
});

test("process titles: parallel workers, background workers, cluster_name", () => {
  const par = parseProcessTitle("postgres: parallel worker for PID 23685 ");
  assert.deepEqual([par.backendType, par.leaderPid], ["parallel worker", 23685]);
  assert.equal(describeTitle(par), "parallel worker for PID 23685");
  const cron = parseProcessTitle("postgres: pg_cron launcher ");
  assert.deepEqual([cron.backendType, cron.name], ["background worker", "pg_cron launcher"]);
  assert.equal(parseProcessTitle("postgres: bgworker: my worker   ").name, "my worker");
  // cluster_name = 'main' (real PostgreSQL 15 output)
  const ck = parseProcessTitle(pad("postgres: main: checkpointer "));
  assert.deepEqual([ck.backendType, ck.cluster], ["checkpointer", "main"]);
  const cl = parseProcessTitle(pad("postgres: main: postgres postgres [local] SELECT"));
  assert.deepEqual([cl.backendType, cl.cluster, cl.role, cl.database, cl.activity], ["client backend", "main", "postgres", "postgres", "SELECT"]);
  const ws = parseProcessTitle("postgres: main: walsender postgres [local] streaming 0/2154000");
  assert.deepEqual([ws.backendType, ws.cluster], ["walsender", "main"]);
  assert.deepEqual([parseProcessTitle("postgres: main: parallel worker for PID 7 ").leaderPid], [7]);
});

test("process titles: the postmaster, children without a title, other programs", () => {
  const pm = parseProcessTitle("/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main\0", { postmaster: true });
  assert.deepEqual(pm, { backendType: "postmaster", title: "/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main" });
  assert.equal(parseProcessTitle("/usr/lib/postgresql/15/bin/postgres\0-D\0/data\0").backendType, "postgres (no title yet)");
  const sh = parseProcessTitle("sh\0-c\0cp pg_wal/0001 /archive/0001\0");
  assert.deepEqual([sh.backendType, sh.name, sh.title], ["other", "sh", "sh -c cp pg_wal/0001 /archive/0001"]);
  assert.equal(describeTitle(sh), "other sh -c cp pg_wal/0001 /archive/0001");
  assert.equal(parseProcessTitle("").backendType, "other");
});

test("waitid stop decoding", () => {
  const info = Buffer.alloc(128);
  info.writeInt32LE(17, 0); // SIGCHLD
  info.writeInt32LE(4, 8); // CLD_TRAPPED
  info.writeInt32LE(4242, 16);
  info.writeInt32LE(5 | (0x80 << 8), 24); // SIGTRAP | PTRACE_EVENT_STOP << 8
  assert.deepEqual(decodeStopInfo(info), { pid: 4242, code: 4, signal: 5, event: 0x80 });
  info.writeInt32LE(10, 24); // a signal-delivery-stop of SIGUSR1
  assert.deepEqual(decodeStopInfo(info), { pid: 4242, code: 4, signal: 10, event: 0 });
});

test("wait status decoding", () => {
  assert.deepEqual(decodeWaitStatus(0x00000000), { kind: "exited", code: 0 });
  assert.deepEqual(decodeWaitStatus(0x00000100), { kind: "exited", code: 1 });
  assert.deepEqual(decodeWaitStatus(9), { kind: "signaled", signal: 9 });
  // PTRACE_INTERRUPT stop: (SIGTRAP | PTRACE_EVENT_STOP << 8) << 8 | 0x7f
  assert.deepEqual(decodeWaitStatus((0x80 << 16) | (5 << 8) | 0x7f), { kind: "stopped", signal: 5, event: 0x80 });
  // a signal-delivery-stop of SIGUSR1
  assert.deepEqual(decodeWaitStatus((10 << 8) | 0x7f), { kind: "stopped", signal: 10, event: 0 });
});

// ---------------------------------------------------------------------------------------------
// The kernel's rule for stacked filters

const ERRNO = (e: number) => (SECCOMP_RET_ERRNO | e) >>> 0;

const ret = (k: number): Insn => stmt(BPF_RET | BPF_K, k >>> 0);

test("stacking: programs run and combine per probe", () => {
  const probes = probesFor("x86_64");
  const got = stackedVerdicts([[ret(ERRNO(1))], [ret(SECCOMP_RET_LOG)]], probes);
  assert.ok(got.every((r) => r === ERRNO(1)));
  assert.deepEqual(stackedVerdicts([], probes.slice(0, 3)), [SECCOMP_RET_ALLOW, SECCOMP_RET_ALLOW, SECCOMP_RET_ALLOW]);
});

test("describeRetInPolicyTerms", () => {
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_ALLOW), "allow");
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_LOG), "log");
  assert.equal(describeRetInPolicyTerms(ERRNO(13)), "error:EACCES");
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_KILL_PROCESS), "kill");
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_KILL_THREAD), "kill_thread");
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_TRAP), "trap");
  assert.equal(describeRetInPolicyTerms(SECCOMP_RET_USER_NOTIF), "user_notif");
  assert.equal(describeRetInPolicyTerms(0x12340000), "UNKNOWN(0x12340000)");
});

// ---------------------------------------------------------------------------------------------
// Comparison with a policy

const POLICY = parsePolicyText(`
global_syscall_default = 'allow'
global_syscall_error = 'mount, ptrace:EPERM'
global_syscall_log = 'swapon'
global_syscall_kill = 'reboot'
`);
const OTHER = parsePolicyText(`
global_syscall_default = 'allow'
global_syscall_error = 'mount'
global_syscall_kill = 'reboot, swapon, init_module'
`);
const nr = (name: string) => syscallNumber("x86_64", name)!;

test("probes: every syscall of the table and the edge cases", () => {
  const p = probesFor("x86_64");
  assert.ok(p.some((x) => x.syscall === "read" && x.syscallnum === 0));
  assert.deepEqual(p.slice(-2).map((x) => x.syscall), ["<x32 read>", "<i386 restart_syscall>"]);
  assert.match(p.at(-3)!.syscall, /^<unknown \d+>$/);
  assert.equal(syscallNumber("x86_64", "read"), 0);
  assert.ok(p.every((x) => x.data.args.length === 6 && x.data.args.every((a) => a === 0n)));
  assert.equal(probesFor("aarch64").at(-1)!.syscall, "<arm restart_syscall>");
});

test("compare: the installed program matches its policy; supervisor answers are described", () => {
  const exp = expectationFor(POLICY, "x86_64");
  const c = compareFilters([exp.programs.installed], exp);
  assert.equal(c.matches, true);
  assert.equal(c.differences.length, 0);
  assert.equal(c.identicalProgram, 0);
  assert.equal(c.checked, probesFor("x86_64").length);
  const row = (n: string) => c.rows.find((r) => r.syscall === n)!;
  assert.equal(row("mount").kernel_action, "error:EACCES (supervisor)");
  assert.equal(row("ptrace").policy_action, "error:EPERM (supervisor)");
  assert.equal(row("swapon").policy_action, "log (supervisor)");
  assert.equal(row("reboot").kernel_action, "kill");
  assert.equal(row("read").kernel_action, "allow");
  assert.equal(row("<x32 read>").kernel_action, "kill");
  assert.equal(row("<i386 restart_syscall>").kernel_action, "kill");
  // execve goes to the supervisor when anything does; where the policy traps it, the supervisor kills.
  const trapExec = expectationFor(parsePolicyText("global_syscall_default = 'allow'\nglobal_syscall_error = 'mount'\nglobal_syscall_trap = 'execve'\n"), "x86_64");
  const t = compareFilters([trapExec.programs.installed], trapExec);
  assert.equal(t.rows.find((r) => r.syscall === "execve")!.kernel_action, "kill (supervisor)");
});

test("compare: no filter never matches; another program's differences are listed", () => {
  const exp = expectationFor(POLICY, "x86_64");
  assert.equal(compareFilters([], exp).matches, false);
  const other = compose(OTHER, "x86_64").installed;
  const c = compareFilters([other], exp);
  assert.equal(c.matches, false);
  assert.equal(c.identicalProgram, null);
  // ptrace: the kernel allows (OTHER does); swapon: OTHER kills; init_module: OTHER kills.
  assert.deepEqual(
    c.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]),
    [
      ["ptrace", "allow", "error:EPERM (supervisor)"],
      ["swapon", "kill", "log (supervisor)"],
      ["init_module", "kill", "allow"],
    ],
  );
  // Both hand mount to the supervisor; if the running supervisor answers differently, it differs too.
  const strict = expectationFor(parsePolicyText("global_syscall_default = 'allow'\nglobal_syscall_error = 'mount:EPERM, ptrace:EPERM'\nglobal_syscall_log = 'swapon'\nglobal_syscall_kill = 'reboot'\n"), "x86_64");
  const c2 = compareFilters([exp.programs.installed], exp, strict.supervisor);
  assert.deepEqual(c2.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]), [["mount", "error:EPERM (supervisor)", "error:EACCES (supervisor)"]]);
});

test("compare: the supervisor answers for the process's context", () => {
  const policy = parsePolicyText("global_syscall_default = 'allow'\nsession_syscall_error = 'listen:EPERM'\n");
  const exp = expectationFor(policy, "x86_64");
  const installed = [exp.programs.installed];
  const listen = (e: typeof exp) => compareFilters(installed, e).rows.find((r) => r.syscall === "listen")!;
  // The postmaster may listen; sessions may not: the kernel hands listen to the supervisor.
  assert.equal(listen(forContext(exp, policy, { context: "postmaster" })).kernel_action, "allow (supervisor)");
  assert.equal(listen(forContext(exp, policy, { context: "session", role: "alice", database: "app" })).kernel_action, "error:EPERM (supervisor)");
  assert.equal(compareFilters(installed, forContext(exp, policy, { context: "session" })).matches, true);
});

test("compare: a stacked extra filter (a container's, say) counts as the kernel counts it", () => {
  const exp = expectationFor(POLICY, "x86_64");
  // Newest first: ours, then an older filter that denies mount with EPERM and kills init_module.
  const older = compilePolicy(parsePolicyText("global_syscall_default = 'allow'\nglobal_syscall_error = 'mount:EPERM'\nglobal_syscall_kill = 'init_module'\n"), "x86_64", { context: "global" });
  const c = compareFilters([exp.programs.installed, older], exp);
  assert.equal(c.identicalProgram, 0);
  assert.equal(c.programs, 2);
  // ERRNO beats USER_NOTIF: mount now fails in the kernel with EPERM, never reaching the supervisor.
  assert.deepEqual(
    c.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]),
    [
      ["mount", "error:EPERM", "error:EACCES (supervisor)"],
      ["init_module", "kill", "allow"],
    ],
  );
  assert.equal(actionRet({ kind: "kill" }), SECCOMP_RET_KILL_PROCESS);
});

// ---------------------------------------------------------------------------------------------
// A whole report over a fake /proc

interface FakeProc {
  pid: number;
  ppid: number;
  cmdline: string;
  seccomp: number;
  filters: number;
  nnp?: number;
}

function fakeProc(procs: FakeProc[]): string {
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-fakeproc-"));
  for (const p of procs) {
    const d = join(root, String(p.pid));
    mkdirSync(d);
    // state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice threads itrealvalue starttime ...
    writeFileSync(join(d, "stat"), `${p.pid} (postgres) S ${p.ppid} ${p.pid} ${p.pid} 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 ${1000 + p.pid} 0 0\n`);
    writeFileSync(join(d, "cmdline"), p.cmdline);
    writeFileSync(
      join(d, "status"),
      `Name:\tpostgres\nPPid:\t${p.ppid}\nThreads:\t1\nNoNewPrivs:\t${p.nnp ?? 1}\nSeccomp:\t${p.seccomp}\nSeccomp_filters:\t${p.filters}\nSpeculation_Store_Bypass:\tthread force mitigated\n`,
    );
  }
  mkdirSync(join(root, "self"));
  writeFileSync(join(root, "self", "status"), "Name:\tnode\nCapEff:\t0000000000000000\nSeccomp:\t0\n");
  return root;
}

test("report over a fake /proc: found by postmaster.pid, children typed, escapes flagged", () => {
  const procs: FakeProc[] = [
    { pid: 500, ppid: 1, cmdline: "/usr/lib/postgresql/15/bin/postgres\0-D\0/data\0", seccomp: 2, filters: 1 },
    { pid: 501, ppid: 500, cmdline: pad("postgres: checkpointer "), seccomp: 2, filters: 1 },
    { pid: 502, ppid: 500, cmdline: pad("postgres: alice app [local] idle"), seccomp: 2, filters: 1 },
    { pid: 503, ppid: 502, cmdline: "sh\0-c\0cat /etc/passwd\0", seccomp: 0, filters: 0, nnp: 0 },
    { pid: 600, ppid: 1, cmdline: "unrelated\0", seccomp: 0, filters: 0 },
  ];
  const proc = fakeProc(procs);
  const dataDir = mkdtempSync(join(tmpdir(), "pg_seccomp-fakedata-"));
  const policyPath = join(dataDir, "policy.conf");
  try {
    writeFileSync(join(dataDir, "postmaster.pid"), "500\n/data\n");
    // --pid is taken for a postmaster only when it runs postgres and its data directory (its cwd) names it.
    symlinkSync("/usr/lib/postgresql/15/bin/postgres", join(proc, "500", "exe"));
    symlinkSync(dataDir, join(proc, "500", "cwd"));
    symlinkSync("/usr/bin/unrelated", join(proc, "600", "exe"));
    assert.throws(() => statusCommand({ pid: 600, procRoot: proc, runStateDir: join(dataDir, "none") }), /process 600 is not a PostgreSQL postmaster: it runs unrelated, not postgres/);
    writeFileSync(policyPath, "global_syscall_default = 'allow'\nglobal_syscall_kill = 'reboot'\n");
    const installed = compose(parsePolicyText("global_syscall_default = 'allow'\nglobal_syscall_kill = 'reboot'\n"), "x86_64").installed.slice();
    const other = compose(OTHER, "x86_64").installed.slice();
    const kernel: Record<number, Insn[][]> = { 500: [installed], 501: [installed], 502: [other], 503: [] };

    // Not root: /proc only.
    const noRoot = collectStatus({ dataDir, policy: policyPath, procRoot: proc, runStateDir: join(dataDir, "none") });
    assert.equal(noRoot.kernelVisible, false);
    assert.match(noRoot.kernelNote ?? "", /^not root: cannot read the filters the kernel holds \(needs CAP_SYS_ADMIN\); showing \/proc only$/);
    assert.equal(noRoot.postmasterPid, 500);
    assert.equal(noRoot.foundBy, "postmaster.pid");
    assert.deepEqual(noRoot.processes.map((p) => [p.pid, p.backendType, p.matchesPolicy]), [
      [500, "postmaster", "unknown"],
      [501, "checkpointer", "unknown"],
      [502, "client backend", "unknown"],
      [503, "other", "NO FILTER"],
    ]);
    assert.equal(noRoot.ok, false);

    // As root (filters injected).
    const r = collectStatus({ dataDir, policy: policyPath, procRoot: proc, runStateDir: join(dataDir, "none"), readFilters: (pid) => kernel[pid] ?? [], syscalls: true });
    assert.deepEqual(r.processes.map((p) => p.context), ["postmaster", "checkpointer", "session/alice/app", "session/alice/app"]);
    assert.deepEqual(r.processes.map((p) => [p.pid, p.matchesPolicy, p.kernelPrograms]), [
      [500, "yes", [installed.length]],
      [501, "yes", [installed.length]],
      [502, "NO (4 differ)", [other.length]],
      [503, "NO FILTER", []],
    ]);
    assert.equal(r.syscalls?.length, probesFor("x86_64").length);
    const text = formatStatus(r);
    assert.match(text, /^ pid \| +backend_type +\| no_new_privs \| seccomp +\| filters \| matches_policy$/m);
    assert.match(text, /^ 501 \| checkpointer +\| yes +\| filter +\| +1 \| yes$/m);
    assert.match(text, /^ 503 \| other +\| no +\| disabled +\| +0 \| NO FILTER$/m);
    assert.match(text, /pid 500 \(postmaster\): filter matches the policy \(\d+ syscalls checked\)/);
    assert.match(text, /WARNING: pid 502 \(client backend alice@app \[local\] idle\): 4 of \d+ syscalls differ from the policy: execve \(59\): kernel allow \(supervisor\), policy allow; mount \(165\): kernel allow \(supervisor\), policy allow; swapon \(167\): kernel kill, policy allow; init_module \(175\): kernel kill, policy allow\n/);
    assert.match(text, /WARNING: pid 503 \(other sh -c cat \/etc\/passwd\): runs WITHOUT a seccomp filter/);
    assert.match(text, /2 of 4 processes need attention/);
    assert.match(text, /effective filter of the postmaster \(500\):\n +syscall +\| syscallnum \| kernel_action \| policy_action/);

    const cmd = statusCommand({ pid: 502, policy: policyPath, procRoot: proc, runStateDir: join(dataDir, "none"), readFilters: (pid) => kernel[pid] ?? [], json: true });
    assert.equal(cmd.exitCode, 1);
    const json = JSON.parse(cmd.output) as { postmasterPid: number; foundBy: string; processes: Array<{ pid: number; comparison: { differences: unknown[] } | null }> };
    assert.equal(json.postmasterPid, 500);
    assert.match(json.foundBy, /--pid 502 \(a client backend\), its parent/);
    assert.equal(json.processes[2]?.comparison?.differences.length, 4);
  } finally {
    rmSync(proc, { recursive: true, force: true });
    rmSync(dataDir, { recursive: true, force: true });
  }
});

test("report: usage errors", () => {
  assert.throws(() => statusCommand({}), StatusError);
  assert.throws(() => statusCommand({ pid: 1, dataDir: "/x" }), StatusError);
  assert.throws(() => statusCommand({ pid: -3 }), StatusError);
  const empty = mkdtempSync(join(tmpdir(), "pg_seccomp-nodata-"));
  try {
    assert.throws(() => statusCommand({ dataDir: empty, runStateDir: join(empty, "none") }), /no server is running on/);
  } finally {
    rmSync(empty, { recursive: true, force: true });
  }
  assert.equal(nr("mount"), 165);
});
