// status against real processes under real filters: a child installs programs compiled from a
// policy (as `run`'s stage does: no_new_privs, seccomp with a listener, then execve) and
// becomes `sleep`; seccompFilters() must return exactly what was installed, and the status
// comparison must say "matches" for the policy and name the syscalls another policy decides
// differently. Needs root (CAP_SYS_ADMIN for PTRACE_SECCOMP_GET_FILTER) and seccomp.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import type { Insn } from "../src/bpf/insn.js";
import {
  SECCOMP_USER_NOTIF_FLAG_CONTINUE,
  close,
  notifRecv,
  notifSend,
  pidfdGetFd,
  pidfdOpen,
  pollListener,
  seccompFilters,
  seccompSupport,
  KernelError,
} from "../src/kernel/index.js";
import { compose } from "../src/compile/compose.js";
import { writeRunState } from "../src/host/run-state.js";
import { parsePolicyText, type Policy } from "../src/policy/policy.js";
import { hostArch, syscallNumber, type Arch } from "../src/syscalls/index.js";
import { collectStatus, compareFilters, expectationFor, filterAccess, statusCommand } from "../src/inspect/status.js";
import { repoPath } from "./support/paths.js";

function skipReason(): string | false {
  if (process.platform !== "linux") return "Linux only";
  const s = seccompSupport();
  if (!s.ok) return `seccomp unavailable: ${s.reason}`;
  const a = filterAccess();
  if (!a.ok) return a.reason;
  return false;
}
const skip = skipReason();
const arch: Arch = process.platform === "linux" ? hostArch() : "x86_64";

// Policies sleep can live under: everything it needs is allowed. POLICY_A sends mount and
// ptrace to the supervisor (error) and uname (log); B decides some of those differently.
const POLICY_A = `
global_syscall_default = 'allow'
global_syscall_error = 'mount, ptrace:EPERM, acct'
global_syscall_log = 'swapon'
global_syscall_kill = 'reboot, kexec_load'
`;
const POLICY_B = `
global_syscall_default = 'allow'
global_syscall_error = 'mount, ptrace, swapon'
global_syscall_kill = 'reboot, kexec_load, init_module'
`;
// Nothing routed to the supervisor: execve stays allowed in the kernel.
const POLICY_C = `
global_syscall_default = 'allow'
global_syscall_kill = 'reboot, kexec_load'
global_syscall_trap = 'acct'
`;

const tmp = mkdtempSync(join(tmpdir(), "pg_seccomp-status-"));
const policyFile = (name: string, text: string): string => {
  const p = join(tmp, name);
  writeFileSync(p, text);
  return p;
};
const installedFor = (p: Policy): Insn[] => compose(p, arch).installed.slice();

const children = new Set<ChildProcess>();
after(() => {
  for (const c of children) c.kill("SIGKILL");
  rmSync(tmp, { recursive: true, force: true });
});

// The child: installs each program in order (the last with a listener, whose fd number it
// prints), then execs sleep. Same steps as src/launcher/stage.ts.
const CHILD = `
import { readFileSync, writeSync } from "node:fs";
const k = await import(${JSON.stringify(pathToFileURL(repoPath("dist/src/kernel/index.js")).href)});
const progs = JSON.parse(readFileSync(0, "utf8"));
k.prepareForExec();
k.setNoNewPrivs();
let listener = -1;
progs.forEach((p, i) => { const fd = k.installFilter(p, { newListener: i === progs.length - 1 }); if (i === progs.length - 1) listener = fd; });
writeSync(1, listener + "\\n");
k.execve("/bin/sleep", ["sleep", "30"], []);
`;

interface Sleeper {
  pid: number;
  child: ChildProcess;
  /** Notifications the supervisor saw (syscall numbers). */
  notified: number[];
}

/** Spawn the child with `programs` (installed in order, so the last is newest) and wait until it is sleep. */
async function sleeperUnder(programs: readonly Insn[][]): Promise<Sleeper> {
  const child = spawn(process.execPath, ["--input-type=module", "-e", CHILD], { stdio: ["pipe", "pipe", "pipe"] });
  children.add(child);
  child.on("exit", () => children.delete(child));
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  child.stdin!.end(JSON.stringify(programs));
  const pid = child.pid!;
  const notified: number[] = [];
  const execveNr = syscallNumber(arch, "execve")!;
  let listener: number | undefined;
  try {
    const deadline = Date.now() + 10000;
    for (;;) {
      if (Date.now() > deadline) throw new Error(`child did not become sleep; stderr: ${err}`);
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`child exited (${child.exitCode ?? child.signalCode}); stderr: ${err}`);
      let cmd = "";
      try {
        cmd = readFileSync(`/proc/${pid}/cmdline`, "utf8");
      } catch {
        // not yet
      }
      if (cmd.startsWith("sleep\0")) break;
      if (listener === undefined && /^\d+\n/.test(out)) {
        // Act as the supervisor: take a copy of the child's listener, as run does.
        const pidfd = pidfdOpen(pid);
        try {
          listener = pidfdGetFd(pidfd, Number(out.trim()));
        } finally {
          close(pidfd);
        }
      }
      if (listener !== undefined && pollListener(listener, 0) === "pending") {
        const n = notifRecv(listener);
        notified.push(n.data.nr);
        // Let exec through; anything else fails as the policy would say (ENOSYS will do here).
        notifSend(listener, n.data.nr === execveNr ? { id: n.id, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE } : { id: n.id, error: 38 });
        continue;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  } finally {
    // sleep makes no filtered call; without a listener a USER_NOTIF call would get ENOSYS.
    if (listener !== undefined) close(listener);
  }
  return { pid, child, notified };
}

function stop(s: Sleeper): Promise<void> {
  return new Promise((res) => {
    if (s.child.exitCode !== null || s.child.signalCode !== null) return res();
    s.child.on("exit", () => res());
    s.child.kill("SIGKILL");
  });
}

test("seccompFilters returns exactly the program installed", { skip }, async () => {
  const prog = installedFor(parsePolicyText(POLICY_A));
  const s = await sleeperUnder([prog]);
  try {
    const got = seccompFilters(s.pid);
    assert.deepEqual(got, [prog]);
    // The process is neither traced nor stopped after the look.
    const st = readFileSync(`/proc/${s.pid}/status`, "utf8");
    assert.match(st, /TracerPid:\s+0\n/);
    assert.doesNotMatch(st, /State:\s+[tT]/);
    assert.ok(s.notified.includes(syscallNumber(arch, "execve")!), "execve went to the supervisor");
  } finally {
    await stop(s);
  }
});

test("a stacked second filter shows as two programs, newest first", { skip }, async () => {
  const older = installedFor(parsePolicyText(POLICY_C));
  const newer = installedFor(parsePolicyText(POLICY_A));
  const s = await sleeperUnder([older, newer]);
  try {
    const got = seccompFilters(s.pid);
    assert.equal(got.length, 2);
    assert.deepEqual(got[0], newer);
    assert.deepEqual(got[1], older);
    assert.match(readFileSync(`/proc/${s.pid}/status`, "utf8"), /Seccomp_filters:\s+2\n/);
    // Combined as the kernel does: A's verdicts, except that C traps acct where A sends it to the
    // supervisor (TRAP is more restrictive than USER_NOTIF).
    const c = compareFilters(got, expectationFor(parsePolicyText(POLICY_A), arch));
    assert.equal(c.identicalProgram, 0);
    assert.deepEqual(c.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]), [["acct", "trap", "error:EACCES (supervisor)"]]);
  } finally {
    await stop(s);
  }
});

test("a process without a filter has none", { skip }, async () => {
  const child = spawn("/bin/sleep", ["30"], { stdio: "ignore" });
  children.add(child);
  try {
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(seccompFilters(child.pid!), []);
  } finally {
    child.kill("SIGKILL");
  }
});

test("seccompFilters fails with ESRCH for a process that does not exist", { skip }, () => {
  assert.throws(() => seccompFilters(0x3ffffff0), (e: unknown) => e instanceof KernelError && e.code === "ESRCH");
});

test("status: the right policy matches, another policy's differences are named", { skip }, async () => {
  const pa = policyFile("a.conf", POLICY_A);
  const pb = policyFile("b.conf", POLICY_B);
  const s = await sleeperUnder([installedFor(parsePolicyText(POLICY_A))]);
  try {
    const good = collectStatus({ anyProcessTree: true, pid: s.pid, policy: pa, syscalls: true });
    assert.equal(good.processes.length, 1);
    const pm = good.processes[0]!;
    assert.equal(pm.pid, s.pid);
    assert.equal(pm.backendType, "postmaster");
    assert.equal(pm.seccompMode, "filter");
    assert.equal(pm.noNewPrivs, true);
    assert.deepEqual(pm.kernelPrograms, [installedFor(parsePolicyText(POLICY_A)).length]);
    assert.equal(pm.matchesPolicy, "yes");
    assert.ok(pm.comparison?.matches);
    assert.equal(pm.comparison?.identicalProgram, 0);
    assert.ok(good.ok);
    const mount = good.syscalls?.find((r) => r.syscall === "mount");
    assert.deepEqual([mount?.kernel_action, mount?.policy_action], ["error:EACCES (supervisor)", "error:EACCES (supervisor)"]);
    const text = statusCommand({ anyProcessTree: true, pid: s.pid, policy: pa });
    assert.equal(text.exitCode, 0);
    assert.match(text.output, /filter matches the policy \(\d+ syscalls checked\)/);

    // No run state: the supervisor is assumed to answer as the compared policy says, so only
    // the kernel's own verdicts can differ.
    const bad = collectStatus({ anyProcessTree: true, pid: s.pid, policy: pb, runStateDir: join(tmp, "no-such-dir") });
    const c = bad.processes[0]!.comparison!;
    assert.equal(c.matches, false);
    assert.equal(c.identicalProgram, null);
    assert.deepEqual(
      c.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]).sort(),
      [
        // The kernel hands acct to a supervisor which, if it ran B, would allow it.
        ["acct", "allow (supervisor)", "allow"],
        ["init_module", "allow", "kill"],
      ],
    );
    assert.equal(bad.ok, false);
    assert.ok(bad.notes.some((n) => /keeps no record/.test(n)));

    // With the run state of a server started with A, the supervisor answers as A says.
    const states = join(tmp, "run");
    writeRunState({ launcherPid: process.pid, postmasterPid: s.pid, dataDir: tmp, policyPath: pa, arch, logPath: join(tmp, "log"), startedAt: new Date().toISOString() }, states);
    const withState = collectStatus({ anyProcessTree: true, pid: s.pid, policy: pb, runStateDir: states });
    assert.equal(withState.policyFrom, "--policy");
    assert.deepEqual(
      withState.processes[0]!.comparison!.differences.map((d) => [d.syscall, d.kernel_action, d.policy_action]).sort(),
      [
        ["acct", "error:EACCES (supervisor)", "allow"],
        ["init_module", "allow", "kill"],
        ["ptrace", "error:EPERM (supervisor)", "error:EACCES (supervisor)"],
        ["swapon", "log (supervisor)", "error:EACCES (supervisor)"],
      ],
    );
    // Without --policy, the run state's policy is the one compared: it matches.
    const fromState = collectStatus({ anyProcessTree: true, pid: s.pid, runStateDir: states });
    assert.equal(fromState.policyPath, pa);
    assert.equal(fromState.policyFrom, "run state");
    assert.equal(fromState.processes[0]!.matchesPolicy, "yes");

    const out = statusCommand({ anyProcessTree: true, pid: s.pid, policy: pb, runStateDir: states });
    assert.equal(out.exitCode, 1);
    assert.match(out.output, /NO \(4 differ\)/);
    assert.match(out.output, /init_module \(\d+\): kernel allow, policy kill/);
    const json = JSON.parse(statusCommand({ anyProcessTree: true, pid: s.pid, policy: pb, json: true, runStateDir: states }).output) as {
      ok: boolean;
      processes: Array<{ matchesPolicy: string }>;
    };
    assert.equal(json.ok, false);
    assert.equal(json.processes[0]?.matchesPolicy, "NO (4 differ)");
  } finally {
    await stop(s);
  }
});

test("status flags processes without a filter loudly", { skip }, async () => {
  // A parent under no filter at all, with one child: both are flagged.
  const parent = spawn("/bin/sh", ["-c", "sleep 30 & wait"], { stdio: "ignore" });
  children.add(parent);
  const pc = policyFile("c.conf", POLICY_C);
  let childPid: number | undefined;
  try {
    const deadline = Date.now() + 5000;
    let report = collectStatus({ anyProcessTree: true, pid: parent.pid!, policy: pc });
    while (report.processes.length < 2 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
      report = collectStatus({ anyProcessTree: true, pid: parent.pid!, policy: pc });
    }
    childPid = report.processes[1]?.pid;
    assert.equal(report.processes.length, 2);
    assert.deepEqual(report.processes.map((p) => p.matchesPolicy), ["NO FILTER", "NO FILTER"]);
    assert.deepEqual(report.processes.map((p) => p.kernelPrograms), [[], []]);
    assert.equal(report.processes[1]?.backendType, "other");
    assert.equal(report.ok, false);
    const out = statusCommand({ anyProcessTree: true, pid: parent.pid!, policy: pc });
    assert.equal(out.exitCode, 1);
    assert.match(out.output, /WARNING: pid \d+ \(other sleep 30\): runs WITHOUT a seccomp filter/);
  } finally {
    if (childPid !== undefined) {
      try {
        process.kill(childPid, "SIGKILL");
      } catch {
        // gone
      }
    }
    parent.kill("SIGKILL");
  }
});
