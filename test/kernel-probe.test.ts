// Kernel-level tests: real seccomp filters installed in throwaway child processes.
// Skips (with the reason) when not on Linux or when seccomp cannot be used from Node here.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, readdirSync } from "node:fs";
import { constants as osConstants } from "node:os";
import { fileURLToPath } from "node:url";
import {
  BPF_ABS,
  BPF_JEQ,
  BPF_JMP,
  BPF_K,
  BPF_LD,
  BPF_RET,
  BPF_W,
  jump,
  stmt,
  type Insn,
} from "../src/bpf/insn.js";
import {
  SECCOMP_DATA_ARCH,
  SECCOMP_DATA_NR,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
  argOffset,
} from "../src/seccomp/index.js";
import {
  KernelError,
  SECCOMP_USER_NOTIF_FLAG_CONTINUE,
  actionAvailable,
  availableActions,
  errnoName,
  errnoNames,
  errnoNumber,
  execve,
  getNoNewPrivs,
  hostKernelArch,
  installFilter,
  kernelShortfalls,
  notifContinueKnown,
  notifIdValid,
  notifRecv,
  notifSend,
  probeKernel,
  seccompSupport,
  syscall6,
  waitListener,
  type SeccompNotification,
} from "../src/kernel/index.js";
import { KernelUnavailableError } from "../src/kernel/errors.js";
import { libcFunction } from "../src/kernel/libc.js";
import { runUnderFilter, type ProbeRun } from "./support/kernel-probe.js";

const support = seccompSupport();
const skip: string | false = support.ok ? false : `seccomp unavailable: ${support.reason}`;
const arch = skip ? undefined : hostKernelArch();
const NR = arch?.nr;

const LD_ABS = BPF_LD | BPF_W | BPF_ABS;
const JEQ = BPF_JMP | BPF_JEQ | BPF_K;
const RET = BPF_RET | BPF_K;

/** Arch check first (anything else is killed), then load the syscall number into A. */
function prologue(): Insn[] {
  return [
    stmt(LD_ABS, SECCOMP_DATA_ARCH),
    jump(JEQ, arch!.auditArch, 1, 0),
    stmt(RET, SECCOMP_RET_KILL_PROCESS),
    stmt(LD_ABS, SECCOMP_DATA_NR),
  ];
}

/** prologue + "nr == X -> action" for each rule + default. */
function byNumber(rules: ReadonlyArray<readonly [number, number]>, dflt = SECCOMP_RET_ALLOW): Insn[] {
  const prog = prologue();
  for (const [nr, action] of rules) prog.push(jump(JEQ, nr, 0, 1), stmt(RET, action));
  prog.push(stmt(RET, dflt));
  return prog;
}

function describeRun(run: ProbeRun): string {
  return JSON.stringify(run, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v), 1);
}

describe("kernel layer (in-process, no filter installed)", { skip }, () => {
  test("syscall6 returns values and errno", () => {
    assert.equal(syscall6(NR!.getpid).ret, BigInt(process.pid));
    const bad = syscall6(NR!.close, [-1n]);
    assert.equal(bad.ret, -1n);
    assert.equal(bad.errno, errnoNumber("EBADF"));
    assert.throws(() => syscall6(NR!.getpid, [0n, 0n, 0n, 0n, 0n, 0n, 0n]), RangeError);
  });

  test("errno table agrees with Node's os.constants.errno", () => {
    const node = osConstants.errno as Record<string, number>;
    let compared = 0;
    for (const [name, value] of Object.entries(node)) {
      assert.equal(errnoNumber(name), value, name);
      compared++;
    }
    assert.ok(compared > 70, `compared only ${compared}`);
    assert.ok(errnoNames().length >= 130);
    assert.equal(errnoName(13), "EACCES");
    assert.equal(errnoName(133), "EHWPOISON");
    assert.equal(errnoNumber("ewouldblock"), 11);
    assert.equal(errnoName(11), "EAGAIN");
    assert.equal(errnoNumber("ENOTAREALERRNO"), undefined);
  });

  test("availableActions lists the actions this project relies on", () => {
    const actions = availableActions();
    for (const a of ["kill_process", "errno", "user_notif", "log", "allow"]) {
      assert.ok(actions.includes(a), `${a} missing from ${actions.join(",")}`);
    }
    assert.equal(actionAvailable(SECCOMP_RET_ALLOW), true);
    assert.equal(actionAvailable(0x12340000), false);
  });

  test("installFilter rejects invalid programs with a clear error", () => {
    // An empty program fails the length check before any privilege check.
    assert.throws(
      () => installFilter([]),
      (e: unknown) =>
        e instanceof KernelError &&
        e.code === "EINVAL" &&
        /seccomp\(SECCOMP_SET_MODE_FILTER\) failed: EINVAL \(Invalid argument\): the kernel rejected the filter/.test(e.message) &&
        /empty/.test(e.message),
    );
    assert.throws(() => installFilter([{ code: 0x10000, jt: 0, jf: 0, k: 0 }]), RangeError);
    // Past the length check the kernel wants no_new_privs or CAP_SYS_ADMIN; as root it validates.
    if (process.getuid?.() === 0 || getNoNewPrivs()) {
      const noRet = [stmt(LD_ABS, SECCOMP_DATA_NR), jump(JEQ, 1, 5, 0), stmt(RET, SECCOMP_RET_ALLOW)];
      assert.throws(
        () => installFilter(noRet),
        (e: unknown) => e instanceof KernelError && e.code === "EINVAL" && /leaves the program/.test(e.message),
      );
    }
  });

  test("a missing libc function fails when called, with a clear error", () => {
    assert.throws(
      () => libcFunction("pg_seccomp_no_such_function", "int pg_seccomp_no_such_function(int)"),
      (e: unknown) => e instanceof KernelUnavailableError && /pg_seccomp_no_such_function\(\) is not available/.test(e.message),
    );
  });

  test("getNoNewPrivs answers without changing anything", () => {
    assert.equal(typeof getNoNewPrivs(), "boolean");
  });

  test("execve refuses a missing program with ENOENT", () => {
    assert.throws(
      () => execve("/nonexistent/pg_seccomp-probe", ["x"], [], { inheritFds: [], resetSignals: false }),
      (e: unknown) => e instanceof KernelError && e.code === "ENOENT",
    );
  });

  test("execve from a Node main thread replaces the process and keeps stdio", () => {
    const kernel = fileURLToPath(new URL("../src/kernel/index.js", import.meta.url));
    const script =
      `import { execve } from ${JSON.stringify(kernel)};` +
      `execve("/bin/sh", ["sh", "-c", "echo \\"$FOO:$#\\"; exit 7"], ["FOO=bar"]);`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
    assert.equal(r.stdout, "bar:0\n", r.stderr);
    assert.equal(r.status, 7);
  });
});

describe("filters installed in a probe child", { skip }, () => {
  test("(a) allow everything: getpid is the child's pid, getppid is us", async () => {
    const run = await runUnderFilter(byNumber([]), [{ nr: NR!.getpid }, { nr: NR!.getppid }]);
    assert.equal(run.outcome, "finished", describeRun(run));
    assert.deepEqual(run.results.map((r) => r.kind), ["returned", "returned"]);
    assert.equal(run.results[0]!.kind === "returned" && run.results[0]!.value, BigInt(run.pid));
    assert.equal(run.results[1]!.kind === "returned" && run.results[1]!.value, BigInt(process.pid));
  });

  test("(b) SECCOMP_RET_ERRNO fails the call with that errno; ERRNO(0) returns 0", async () => {
    const prog = byNumber([
      [NR!.getppid, SECCOMP_RET_ERRNO | 13],
      [NR!.getuid, SECCOMP_RET_ERRNO | 38],
      [NR!.gettid, SECCOMP_RET_ERRNO | 0],
    ]);
    const run = await runUnderFilter(prog, [{ nr: NR!.getppid }, { nr: NR!.getuid }, { nr: NR!.gettid }, { nr: NR!.getpid }]);
    assert.equal(run.outcome, "finished", describeRun(run));
    assert.deepEqual(run.results[0], { index: 0, nr: NR!.getppid, kind: "errno", errno: 13, code: "EACCES" });
    assert.deepEqual(run.results[1], { index: 1, nr: NR!.getuid, kind: "errno", errno: 38, code: "ENOSYS" });
    assert.deepEqual(run.results[2], { index: 2, nr: NR!.gettid, kind: "returned", value: 0n });
    assert.deepEqual(run.results[3], { index: 3, nr: NR!.getpid, kind: "returned", value: BigInt(run.pid) });
  });

  test("(c) SECCOMP_RET_KILL_PROCESS kills the child with SIGSYS at that call", async () => {
    const prog = byNumber([[NR!.getuid, SECCOMP_RET_KILL_PROCESS]]);
    const run = await runUnderFilter(prog, [{ nr: NR!.getpid }, { nr: NR!.getuid }, { nr: NR!.getpid }]);
    assert.equal(run.outcome, "killed", describeRun(run));
    assert.equal(run.signal, "SIGSYS");
    assert.equal(run.results.length, 1, "only the call before getuid reported");
    assert.equal(run.results[0]!.kind, "returned");
  });

  test("(d) the filter sees all 64 bits of an argument", async () => {
    // kill(0, sig): the kernel truncates sig to an int, but the filter sees the whole register.
    //   hi(args[1]) != 0xffffffff -> allow; lo(args[1]) == 1 -> ERRNO(E2BIG) else ERRNO(ENOEXEC)
    const prog = [
      ...prologue(),
      jump(JEQ, NR!.kill, 1, 0),
      stmt(RET, SECCOMP_RET_ALLOW),
      stmt(LD_ABS, argOffset(1, "hi")),
      jump(JEQ, 0xffffffff, 1, 0),
      stmt(RET, SECCOMP_RET_ALLOW),
      stmt(LD_ABS, argOffset(1, "lo")),
      jump(JEQ, 1, 0, 1),
      stmt(RET, SECCOMP_RET_ERRNO | 7),
      stmt(RET, SECCOMP_RET_ERRNO | 8),
    ];
    const run = await runUnderFilter(prog, [
      { nr: NR!.kill, args: [0n, 0n] }, // allowed: kill(0, 0) probes our own process group
      { nr: NR!.kill, args: [0n, 0xffffffff00000001n] }, // hi and lo both checked -> E2BIG
      { nr: NR!.kill, args: [0n, 0xffffffff00000000n] }, // the kernel alone would have run kill(0, 0)
      { nr: NR!.kill, args: [0n, 0x00000000ffffffffn] }, // allowed: the kernel sees sig -1 -> EINVAL
      { nr: NR!.kill, args: [0n, -0xffffffffn] }, // == 0xffffffff00000001 modulo 2^64 -> E2BIG
    ]);
    assert.equal(run.outcome, "finished", describeRun(run));
    assert.deepEqual(
      run.results.map((r) => (r.kind === "errno" ? r.code : r.kind === "returned" ? r.value : r.kind)),
      [0n, "E2BIG", "ENOEXEC", "EINVAL", "E2BIG"],
    );
  });

  test("(e) an invalid program is refused in the child too (install-failed, EINVAL)", async () => {
    const run = await runUnderFilter([stmt(LD_ABS, 3), stmt(RET, SECCOMP_RET_ALLOW)], [{ nr: NR!.getpid }]);
    assert.equal(run.outcome, "install-failed", describeRun(run));
    assert.deepEqual(run.installError, { errno: 22, code: "EINVAL" });
    assert.match(run.stderr, /not an aligned offset inside seccomp_data/);
    assert.equal(run.results.length, 0);
  });

  test("SECCOMP_RET_TRAP is reported as trapped with its data", async () => {
    const prog = byNumber([[NR!.getppid, SECCOMP_RET_TRAP | 0x1234]]);
    const run = await runUnderFilter(prog, [{ nr: NR!.getppid }, { nr: NR!.getpid }]);
    assert.equal(run.outcome, "finished", describeRun(run));
    const t = run.results[0]!;
    assert.equal(t.kind, "trapped");
    assert.ok(t.kind === "trapped");
    assert.equal(t.data, 0x1234);
    assert.equal(t.trappedNr, NR!.getppid);
    assert.equal(run.results[1]!.kind === "returned" && run.results[1]!.value, BigInt(run.pid));
  });

  test("SECCOMP_RET_KILL_THREAD on the main thread is detected", async () => {
    const prog = byNumber([[NR!.getuid, SECCOMP_RET_KILL_THREAD]]);
    const run = await runUnderFilter(prog, [{ nr: NR!.getpid }, { nr: NR!.getuid }]);
    assert.equal(run.outcome, "thread-killed", describeRun(run));
    assert.equal(run.results.length, 1);
  });

  test("the child sets no_new_privs unless told not to", async () => {
    const PR_GET_NO_NEW_PRIVS = 39n;
    const calls = [{ nr: NR!.prctl, args: [PR_GET_NO_NEW_PRIVS, 0n, 0n, 0n, 0n] }];
    const withNnp = await runUnderFilter(byNumber([]), calls);
    assert.equal(withNnp.results[0]?.kind === "returned" && withNnp.results[0].value, 1n, describeRun(withNnp));
    if (process.getuid?.() === 0) {
      const without = await runUnderFilter(byNumber([]), calls, { noNewPrivs: false });
      assert.equal(without.results[0]?.kind === "returned" && without.results[0].value, 0n, describeRun(without));
    }
  });

  test("a filter that refuses write(2) loses the reports but not the verdict", async () => {
    const prog = byNumber([[NR!.write, SECCOMP_RET_ERRNO | 1]]);
    const run = await runUnderFilter(prog, [{ nr: NR!.getpid }]);
    assert.equal(run.outcome, "incomplete", describeRun(run));
    assert.equal(run.exitCode, 4);
    assert.equal(run.results.length, 0);
  });

  test("user notification: answer, fail, and continue from a supervisor", async () => {
    const prog = byNumber([
      [NR!.getppid, SECCOMP_RET_USER_NOTIF],
      [NR!.getuid, SECCOMP_RET_USER_NOTIF],
      [NR!.gettid, SECCOMP_RET_USER_NOTIF],
    ]);
    const seen: SeccompNotification[] = [];
    const validity: boolean[] = [];
    const filteredThreads: Record<string, string> = {};
    const run = await runUnderFilter(
      prog,
      [{ nr: NR!.getppid, args: [0xfeedfacecafebeefn] }, { nr: NR!.getuid }, { nr: NR!.gettid }],
      {
        newListener: true,
        supervise: async (listener, pid) => {
          for (let i = 0; i < 3; i++) {
            const state = await waitListener(listener, 10000);
            if (state !== "pending") throw new Error(`listener ${state}`);
            const n = notifRecv(listener);
            seen.push(n);
            if (i === 0) {
              // The child's main thread is parked in getppid: see which threads carry a filter.
              for (const tid of readdirSync(`/proc/${pid}/task`)) {
                const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
                filteredThreads[tid] = /^Seccomp_filters:\s*(\d+)/m.exec(status)?.[1] ?? "?";
              }
            }
            validity.push(notifIdValid(listener, n.id));
            if (n.data.nr === NR!.getppid) notifSend(listener, { id: n.id, val: 4242n });
            else if (n.data.nr === NR!.getuid) notifSend(listener, { id: n.id, error: 1 });
            else notifSend(listener, { id: n.id, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE });
            validity.push(notifIdValid(listener, n.id));
          }
        },
      },
    );
    assert.equal(run.superviseError, undefined);
    assert.equal(run.outcome, "finished", describeRun(run));
    assert.ok(typeof run.childListenerFd === "number" && run.childListenerFd > 2);
    assert.deepEqual(run.results[0], { index: 0, nr: NR!.getppid, kind: "returned", value: 4242n });
    assert.deepEqual(run.results[1], { index: 1, nr: NR!.getuid, kind: "errno", errno: 1, code: "EPERM" });
    assert.deepEqual(run.results[2], { index: 2, nr: NR!.gettid, kind: "returned", value: BigInt(run.pid) });
    assert.deepEqual(seen.map((n) => n.data.nr), [NR!.getppid, NR!.getuid, NR!.gettid]);
    assert.equal(seen[0]!.pid, run.pid);
    assert.equal(seen[0]!.data.arch, arch!.auditArch);
    assert.equal(seen[0]!.data.args[0], 0xfeedfacecafebeefn);
    assert.deepEqual(validity, [true, false, true, false, true, false]);
    // No TSYNC: only the main thread (tid == pid) has the filter; Node's helper threads do not.
    assert.equal(filteredThreads[String(run.pid)], "1", JSON.stringify(filteredThreads));
    const others = Object.entries(filteredThreads).filter(([tid]) => tid !== String(run.pid));
    assert.ok(others.length > 0, "a Node process has helper threads");
    for (const [tid, n] of others) assert.equal(n, "0", `thread ${tid}`);
  });

  test("the kernel-feature probe (run's refusal) agrees with the kernel: a listener taken with pidfd_getfd, CONTINUE known on it and answered", async () => {
    const k = probeKernel();
    let continueKnown: boolean | undefined;
    const run = await runUnderFilter(byNumber([[NR!.getppid, SECCOMP_RET_USER_NOTIF]]), [{ nr: NR!.getppid }], {
      newListener: true,
      supervise: async (listener) => {
        continueKnown = notifContinueKnown(listener); // nothing pending yet: ENOENT where the flag is known
        const state = await waitListener(listener, 10000);
        if (state !== "pending") throw new Error(`listener ${state}`);
        const n = notifRecv(listener);
        notifSend(listener, { id: n.id, flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE });
      },
    });
    assert.equal(run.superviseError, undefined);
    assert.equal(run.outcome, "finished", describeRun(run));
    assert.equal(run.results[0]?.kind, "returned", "CONTINUE let getppid through");
    assert.equal(continueKnown, true);
    // The kernel just did all a supervised run needs: the probe must say it has it.
    assert.ok(k.pidfdOpen.present && k.pidfdGetfd.present && k.flags.newListener && k.actions.includes("user_notif"), JSON.stringify(k));
    assert.deepEqual(kernelShortfalls(k, { supervisor: true, actions: ["kill_process", "errno", "user_notif", "allow"], specAllow: false }), []);
  });
});
