// What this kernel offers pg_seccomp, asked of the kernel itself: a flag it does not know gives
// EINVAL, a call it does not have gives ENOSYS, an action it lacks is EOPNOTSUPP from
// SECCOMP_GET_ACTION_AVAIL. Never read off the version string: distributions backport (RHEL's
// 4.18 and 5.14 carry later seccomp features) and containers can block a call the kernel has.
//
// probeKernel() asks (libc, cheap: no filter is installed, no process is created);
// kernelShortfalls() decides from the answers alone (pure, unit-tested with faked answers).
// docs/deploy.md ("Kernel") and docs/design.md list the minimum and each feature's fallback.

import { SECCOMP_RET_ACTIONS, retAction } from "../seccomp/index.js";
import { BPF_K, BPF_RET, type Insn } from "../bpf/insn.js";
import { errnoName } from "../syscalls/errno.js";
import { release } from "node:os";
import { readFileSync } from "node:fs";
import { hostKernelArch } from "./arch.js";
import { addressOf, close, syscall6 } from "./libc.js";
import {
  SECCOMP_FILTER_FLAG_NEW_LISTENER,
  SECCOMP_FILTER_FLAG_SPEC_ALLOW,
  SECCOMP_FILTER_FLAG_TSYNC_ESRCH,
  SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
  SECCOMP_GET_ACTION_AVAIL,
  SECCOMP_SET_MODE_FILTER,
  availableActions,
} from "./seccomp.js";

/** The oldest kernel pg_seccomp supports with a supervisor (pidfd_getfd is the newest call it needs). */
export const MINIMUM_KERNEL = "5.6";

/** How a call or flag answered: present, absent (the kernel lacks it), or refused by something else (a container's filter, EPERM). */
export type Answer = { present: true } | { present: false; errno: string };

export interface KernelAnswers {
  /** seccomp(SECCOMP_GET_ACTION_AVAIL) (4.14); absent on older kernels and without seccomp. */
  actionAvail: Answer;
  /** The actions SECCOMP_GET_ACTION_AVAIL says the kernel has, as actions_avail spells them. */
  actions: readonly string[];
  /** SECCOMP_SET_MODE_FILTER flags the kernel knows (EFAULT for a NULL program rather than EINVAL). */
  flags: {
    newListener: boolean; // 5.0
    specAllow: boolean; // 4.17
    tsyncEsrch: boolean; // 5.7
    waitKillableRecv: boolean; // 5.19
  };
  pidfdOpen: Answer; // 5.3
  pidfdGetfd: Answer; // 5.6
  /** /proc/PID/status has Seccomp_filters: (5.9): how the launcher checks that an injection went in. */
  filterCount: boolean;
}

/** What a run needs of the kernel. */
export interface KernelNeeds {
  /** Some call goes to the supervisor: a user-notification listener is needed. */
  supervisor: boolean;
  /** The actions the installed program returns (actions_avail spelling). */
  actions: readonly string[];
  /** run --spec-allow. */
  specAllow: boolean;
  /** Contexts differ on some call: each classified process gets its context's denials injected (kernel-held contexts). */
  injects?: boolean;
}

export interface Shortfall {
  /** What is missing, as seccomp(2) and the man pages name it. */
  feature: string;
  /** The mainline kernel that has it. */
  since: string;
  /** Why run needs it, or what the kernel said. */
  why: string;
}

const ACTION_SINCE: Readonly<Record<string, string>> = {
  kill_process: "4.14", kill_thread: "3.5", trap: "3.5", errno: "3.5", user_notif: "5.0", trace: "3.5", log: "4.14", allow: "3.5",
};

/** Why a present-or-not answer fell short: the kernel lacks it, or something refused it. */
function absentWhy(a: Answer, need: string): string {
  if (a.present) return need;
  return a.errno === "ENOSYS" ? need : `${need}; the call failed with ${a.errno} (a container's seccomp profile may block it)`;
}

/**
 * What the kernel lacks for a run that needs `needs`, most basic first; empty when it has it all.
 * Pure: the answers come from probeKernel() (or a test).
 */
export function kernelShortfalls(k: KernelAnswers, needs: KernelNeeds): Shortfall[] {
  const out: Shortfall[] = [];
  if (!k.actionAvail.present) {
    // Without SECCOMP_GET_ACTION_AVAIL nothing else can be asked; KILL_PROCESS came with it.
    out.push({ feature: "seccomp(SECCOMP_GET_ACTION_AVAIL)", since: "4.14", why: absentWhy(k.actionAvail, "to check the filter's actions before installing it") });
    return out;
  }
  const wanted = new Set(needs.actions);
  if (needs.supervisor) wanted.add("user_notif");
  for (const a of SECCOMP_RET_ACTIONS) {
    if (wanted.has(a.availName) && !k.actions.includes(a.availName)) {
      out.push({ feature: `SECCOMP_RET_${a.name}`, since: ACTION_SINCE[a.availName] ?? "?", why: a.availName === "user_notif" ? "the supervisor answers routed calls through user notifications" : "the policy's program returns it" });
    }
  }
  if (needs.supervisor) {
    if (!k.flags.newListener) out.push({ feature: "SECCOMP_FILTER_FLAG_NEW_LISTENER", since: "5.0", why: "the supervisor's listener" });
    if (!k.pidfdOpen.present) out.push({ feature: "pidfd_open(2)", since: "5.3", why: absentWhy(k.pidfdOpen, "to take the listener from the stage process") });
    if (!k.pidfdGetfd.present) out.push({ feature: "pidfd_getfd(2)", since: "5.6", why: absentWhy(k.pidfdGetfd, "to take the listener from the stage process") });
  }
  if (needs.supervisor && needs.injects && !k.filterCount) {
    out.push({ feature: "Seccomp_filters in /proc/PID/status", since: "5.9", why: "to check that a context's filter injected into a process went in (a process's own filter could answer the call and install nothing)" });
  }
  if (needs.specAllow && !k.flags.specAllow) out.push({ feature: "SECCOMP_FILTER_FLAG_SPEC_ALLOW", since: "4.17", why: "run --spec-allow" });
  return out;
}

/** The refusal for `run` and `run --check`: one error line, one hint line (without the "pg_seccomp: " prefixes). */
export function kernelRefusal(shortfalls: readonly Shortfall[], release: string): string {
  const list = shortfalls.map((s) => `${s.feature} (Linux ${s.since}: ${s.why})`).join(", ");
  return `this kernel (${release}) lacks what run needs: ${list}\n` +
    `hint: pg_seccomp needs Linux ${MINIMUM_KERNEL} or later (tested on 5.10 and 6.1; docs/deploy.md, "Kernel"); ` +
    `a kernel with these features backported also works: they are probed, not read off the version`;
}

/** The seccomp actions a program returns (its BPF_RET|BPF_K instructions), actions_avail spelling. */
export function programActions(prog: readonly Insn[]): string[] {
  const seen = new Set<number>();
  for (const ins of prog) if (ins.code === (BPF_RET | BPF_K)) seen.add(retAction(ins.k));
  return SECCOMP_RET_ACTIONS.filter((a) => seen.has(a.value >>> 0)).map((a) => a.availName);
}

/** One line for `run --check`: the probed features, and what runs without the missing optional ones. */
export function describeKernel(k: KernelAnswers, release: string): string {
  const yes = (b: boolean) => (b ? "yes" : "no");
  return `${release}: user_notif ${yes(k.actions.includes("user_notif"))}, pidfd_getfd ${yes(k.pidfdGetfd.present)}, ` +
    `WAIT_KILLABLE_RECV ${yes(k.flags.waitKillableRecv)} (unused)`;
}

// --- the probe (libc) -------------------------------------------------------------------------

/** A SECCOMP_SET_MODE_FILTER flag is known when a NULL program gives EFAULT (the flags are checked first: EINVAL). */
function flagKnown(flags: number): boolean {
  const r = syscall6(hostKernelArch().nr.seccomp, [BigInt(SECCOMP_SET_MODE_FILTER), BigInt(flags), 0n]);
  if (r.ret !== -1n) throw new Error(`seccomp(SECCOMP_SET_MODE_FILTER, ${flags}, NULL) returned ${r.ret}`);
  return r.errno === 14; // EFAULT
}

function answer(r: { ret: bigint; errno: number }, presentErrno?: number): Answer {
  if (r.ret >= 0n || r.errno === presentErrno) return { present: true };
  return { present: false, errno: errnoName(r.errno) };
}

/**
 * Asks this kernel what pg_seccomp uses (see KernelAnswers). Installs no filter and creates no
 * process: flags are tried with a NULL program, pidfd_getfd with a bad pidfd (EBADF: present).
 */
export function probeKernel(): KernelAnswers {
  const nr = hostKernelArch().nr;
  const avail = Buffer.alloc(4);
  const r = syscall6(nr.seccomp, [BigInt(SECCOMP_GET_ACTION_AVAIL), 0n, addressOf(avail)]);
  const actionAvail = answer(r, 95 /* EOPNOTSUPP: the call exists */);
  const actions = actionAvail.present ? availableActions() : [];
  const open = syscall6(nr.pidfd_open, [BigInt(process.pid), 0n]);
  if (open.ret >= 0n) close(Number(open.ret));
  return {
    actionAvail,
    actions,
    flags: {
      newListener: flagKnown(SECCOMP_FILTER_FLAG_NEW_LISTENER),
      specAllow: flagKnown(SECCOMP_FILTER_FLAG_SPEC_ALLOW),
      tsyncEsrch: flagKnown(SECCOMP_FILTER_FLAG_TSYNC_ESRCH),
      // The kernel accepts it only with NEW_LISTENER.
      waitKillableRecv: flagKnown(SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV),
    },
    pidfdOpen: answer(open),
    pidfdGetfd: answer(syscall6(nr.pidfd_getfd, [-1n, 0n, 0n]), 9 /* EBADF */),
    filterCount: /^Seccomp_filters:/m.test(readFileSync("/proc/self/status", "utf8")),
  };
}

/** The running kernel's release (uname -r), for messages only: decisions come from probeKernel(). */
export function kernelRelease(): string {
  return release();
}
