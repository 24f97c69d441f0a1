// The kernel-requirement decision (pure) from faked probe answers: which kernels run refuses,
// naming the feature and the kernel that has it; and the probe itself on this machine, checked
// against the calls it stands for.

import { test } from "node:test";
import assert from "node:assert/strict";
import { BPF_K, BPF_RET, stmt } from "../bpf/insn.js";
import { SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO, SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_USER_NOTIF } from "../seccomp/index.js";
import { MINIMUM_KERNEL, describeKernel, kernelRefusal, kernelShortfalls, probeKernel, programActions, type KernelAnswers, type KernelNeeds } from "./features.js";
import { seccompSupport } from "./seccomp.js";
import { close, pidfdOpen } from "./libc.js";

const ALL = ["kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log", "allow"];
const absent = { present: false as const, errno: "ENOSYS" };

/** What the probe says on mainline kernels of each release (the features pg_seccomp asks about). */
function kernelLike(version: "4.9" | "4.19" | "5.4" | "5.5" | "5.8" | "5.10" | "6.1"): KernelAnswers {
  const at = (v: string) => compare(version, v) >= 0;
  return {
    actionAvail: at("4.14") ? { present: true } : { present: false, errno: "EINVAL" },
    actions: ALL.filter((a) => (a === "user_notif" ? at("5.0") : a === "kill_process" || a === "log" ? at("4.14") : true)),
    flags: { newListener: at("5.0"), specAllow: at("4.17"), tsyncEsrch: at("5.7"), waitKillableRecv: at("5.19") },
    pidfdOpen: at("5.3") ? { present: true } : absent,
    pidfdGetfd: at("5.6") ? { present: true } : absent,
    filterCount: at("5.9"),
  };
}
function compare(a: string, b: string): number {
  const [am, an] = a.split(".").map(Number) as [number, number];
  const [bm, bn] = b.split(".").map(Number) as [number, number];
  return am !== bm ? am - bm : an - bn;
}

const supervised: KernelNeeds = { supervisor: true, actions: ["kill_process", "errno", "user_notif", "allow"], specAllow: false };
const inKernelOnly: KernelNeeds = { supervisor: false, actions: ["kill_process", "errno", "allow"], specAllow: false };

test("5.10 and 6.1 have all a supervised run needs; 5.5 lacks pidfd_getfd (5.6), 5.4 also pidfd_getfd only", () => {
  assert.deepEqual(kernelShortfalls(kernelLike("6.1"), supervised), []);
  assert.deepEqual(kernelShortfalls(kernelLike("5.10"), supervised), []);
  assert.deepEqual(kernelShortfalls(kernelLike("5.5"), supervised).map((s) => `${s.feature} ${s.since}`), ["pidfd_getfd(2) 5.6"]);
  assert.deepEqual(kernelShortfalls(kernelLike("5.4"), supervised).map((s) => `${s.feature} ${s.since}`), ["pidfd_getfd(2) 5.6"]);
  assert.equal(MINIMUM_KERNEL, "5.6");
});

test("per-context policies (kernel-held contexts) need the filter count of 5.9: 5.8 refuses them naming it, runs global-only ones; 5.10 runs both", () => {
  const perContext: KernelNeeds = { ...supervised, injects: true };
  assert.deepEqual(kernelShortfalls(kernelLike("5.8"), perContext).map((s) => `${s.feature} ${s.since}`), ["Seccomp_filters in /proc/PID/status 5.9"]);
  assert.deepEqual(kernelShortfalls(kernelLike("5.8"), supervised), []);
  assert.deepEqual(kernelShortfalls(kernelLike("5.10"), perContext), []);
});

test("4.19 (no user notification): a supervised run is refused naming USER_NOTIF, NEW_LISTENER and the pidfd calls; a policy decided in the kernel runs", () => {
  const s = kernelShortfalls(kernelLike("4.19"), supervised);
  assert.deepEqual(s.map((x) => `${x.feature} ${x.since}`), [
    "SECCOMP_RET_USER_NOTIF 5.0",
    "SECCOMP_FILTER_FLAG_NEW_LISTENER 5.0",
    "pidfd_open(2) 5.3",
    "pidfd_getfd(2) 5.6",
  ]);
  assert.deepEqual(kernelShortfalls(kernelLike("4.19"), inKernelOnly), []);
});

test("4.9 (no SECCOMP_GET_ACTION_AVAIL): refused for any policy, naming the call and 4.14 only", () => {
  for (const needs of [supervised, inKernelOnly]) {
    const s = kernelShortfalls(kernelLike("4.9"), needs);
    assert.deepEqual(s.map((x) => `${x.feature} ${x.since}`), ["seccomp(SECCOMP_GET_ACTION_AVAIL) 4.14"]);
  }
});

test("a call a container blocks (EPERM) is named with its errno; --spec-allow needs SPEC_ALLOW (4.17)", () => {
  const k = { ...kernelLike("6.1"), pidfdGetfd: { present: false as const, errno: "EPERM" } };
  const [s] = kernelShortfalls(k, supervised);
  assert.equal(s?.feature, "pidfd_getfd(2)");
  assert.match(s!.why, /failed with EPERM \(a container's seccomp profile may block it\)/);
  const old = { ...kernelLike("5.10"), flags: { ...kernelLike("5.10").flags, specAllow: false } };
  assert.deepEqual(kernelShortfalls(old, { ...supervised, specAllow: true }).map((x) => x.feature), ["SECCOMP_FILTER_FLAG_SPEC_ALLOW"]);
  assert.deepEqual(kernelShortfalls(old, supervised), []);
});

test("features pg_seccomp does not use never refuse: no WAIT_KILLABLE_RECV (5.19), no TSYNC_ESRCH (5.7)", () => {
  const k = { ...kernelLike("6.1"), flags: { newListener: true, specAllow: true, tsyncEsrch: false, waitKillableRecv: false } };
  assert.deepEqual(kernelShortfalls(k, supervised), []);
});

test("the refusal is one error line and one hint naming the minimum", () => {
  const msg = kernelRefusal(kernelShortfalls(kernelLike("5.4"), supervised), "5.4.0-test");
  const lines = msg.split("\n");
  assert.equal(lines.length, 2);
  assert.equal(lines[0], "this kernel (5.4.0-test) lacks what run needs: pidfd_getfd(2) (Linux 5.6: to take the listener from the stage process)");
  assert.match(lines[1]!, /^hint: pg_seccomp needs Linux 5\.6 or later/);
  assert.match(describeKernel(kernelLike("5.10"), "5.10.0-test"), /^5\.10\.0-test: user_notif yes, pidfd_getfd yes, WAIT_KILLABLE_RECV no/);
});

test("programActions reads the actions a program returns", () => {
  const RET = BPF_RET | BPF_K;
  const prog = [stmt(RET, SECCOMP_RET_ERRNO | 1), stmt(RET, SECCOMP_RET_USER_NOTIF), stmt(RET, SECCOMP_RET_KILL_PROCESS), stmt(RET, SECCOMP_RET_ALLOW)];
  assert.deepEqual(programActions(prog), ["kill_process", "errno", "user_notif", "allow"]);
  assert.deepEqual(programActions([stmt(RET, SECCOMP_RET_ALLOW)]), ["allow"]);
});

const support = seccompSupport();
test("the probe on this kernel agrees with the calls: pidfd_open present ⇔ it works; every action it names is one GET_ACTION_AVAIL knows", { skip: support.ok ? false : support.reason }, () => {
  const k = probeKernel();
  assert.ok(k.actionAvail.present);
  assert.ok(k.actions.includes("allow") && k.actions.includes("errno"));
  let opened = false;
  try {
    close(pidfdOpen(process.pid));
    opened = true;
  } catch {
    opened = false;
  }
  assert.equal(k.pidfdOpen.present, opened);
  // A kernel with NEW_LISTENER has USER_NOTIF (both 5.0), and the reverse.
  assert.equal(k.flags.newListener, k.actions.includes("user_notif"));
});
