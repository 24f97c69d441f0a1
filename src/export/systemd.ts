// A systemd drop-in ([Service] section) for a policy's global filter. systemd's directives can
// say less than a policy: no argument conditions, one answer for every call an allow list leaves
// out, and a set of calls (@default) it always allows. Whatever cannot be said exactly is said
// more strictly and named in a warning; what could only be said more loosely is refused unless
// the caller accepts it (--accept-weaker), and then named in the header.

import { ExportError, commonRemarks, describeAction, type ExportOptions } from "./common.js";
import { contextDecisions } from "../policy/decision.js";
import { syscallNumber } from "../syscalls/index.js";
import { actionRank, type Action } from "../policy/actions.js";
import { withoutPresets, PRESETS, type PresetName } from "../policy/harden.js";
import type { Decision, Leaf } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";

/** `systemd-analyze syscall-filter @default` (systemd 252): allowed by every allow list. */
export const SYSTEMD_ALWAYS_ALLOWED = new Set(
  ("arch_prctl brk cacheflush clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep clock_nanosleep_time64 " +
    "execve exit exit_group futex futex_time64 futex_waitv get_robust_list get_thread_area getegid getegid32 geteuid geteuid32 getgid " +
    "getgid32 getgroups getgroups32 getpgid getpgrp getpid getppid getrandom getresgid getresgid32 getresuid getresuid32 getrlimit getsid " +
    "gettid gettimeofday getuid getuid32 membarrier mmap mmap2 mprotect munmap nanosleep pause prlimit64 restart_syscall riscv_flush_icache " +
    "riscv_hwprobe rseq rt_sigreturn sched_getaffinity sched_yield set_robust_list set_thread_area set_tid_address set_tls sigreturn time " +
    "ugetrlimit uretprobe").split(" "),
);

/** The systemd directive that does what a preset does, and what it does differently. */
const PRESET_DIRECTIVES: Record<PresetName, { directive: string; differs?: string }> = {
  namespaces: { directive: "RestrictNamespaces=yes", differs: "clone with CLONE_PARENT is not refused by systemd" },
  address_families: { directive: "RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK", differs: "systemd allows every netlink protocol, not only NETLINK_ROUTE" },
  personality: { directive: "LockPersonality=yes" },
  suid_sgid: { directive: "RestrictSUIDSGID=yes" },
  tiocsti: { directive: "", differs: "systemd has no directive for TIOCSTI/TIOCLINUX: ioctl is not restricted by request" },
};

export interface SystemdExport {
  text: string;
  /** Parsed form, for --json and tests. */
  directives: Array<[string, string]>;
  warnings: string[];
  /** Rules exported more loosely than the policy says (only with acceptWeaker). */
  weaker: string[];
}

function leaves(d: Decision): Leaf[] {
  return d.kind === "leaf" ? [d] : [...leaves(d.then), ...leaves(d.else)];
}

function strictest(d: Decision): Action {
  return leaves(d).map((l) => l.action).reduce((a, b) => (actionRank(b) > actionRank(a) ? b : a));
}

export function exportSystemd(policy: Policy, opts: ExportOptions & { acceptWeaker?: boolean; policyName?: string }): SystemdExport {
  // Presets become systemd's own directives; the rest is the policy's lists.
  const presets = policy.hardening?.presets ?? [];
  const cd = contextDecisions(withoutPresets(policy), opts.arch, opts.context ?? { context: "global" });
  const warnings: string[] = [];
  const weaker: string[] = [];
  const header: string[] = commonRemarks(policy, cd, false);
  const def = cd.defaultDecision.action;
  const allowList = def.kind !== "allow" && def.kind !== "log";

  // One unconditional action per syscall: where the policy has conditions, the strictest of its
  // answers (systemd cannot test arguments).
  const actions = new Map<string, Action>();
  const conditional: string[] = [];
  for (const [, { name, decision }] of cd.named) {
    if (decision.kind === "branch") conditional.push(`${name} -> ${describeAction(strictest(decision))}`);
    actions.set(name, decision.kind === "leaf" ? decision.action : strictest(decision));
  }
  if (conditional.length) {
    warnings.push(`argument conditions dropped (systemd cannot test arguments); each such syscall gets its strictest answer: ${conditional.join(", ")}`);
  }
  header.push("run's structural rules (clone with CLONE_PARENT -> EPERM, clone3 -> ENOSYS) are not carried: they protect run's process classification, which systemd alone does not do");

  const directives: Array<[string, string]> = [];
  const logged = [...actions].filter(([, a]) => a.kind === "log").map(([n]) => n);
  if (allowList) {
    const allowed = [...actions].filter(([, a]) => a.kind === "allow" || a.kind === "log").map(([n]) => n).sort();
    directives.push(["SystemCallFilter", allowed.join(" ")]);
    if (def.kind === "error") directives.push(["SystemCallErrorNumber", errnoName(def.errno!)]);
    else if (def.kind === "trap") warnings.push("the default action trap becomes kill (systemd cannot trap): stricter");
    for (const [name, a] of actions) {
      if (a.kind === "allow" || a.kind === "log") continue;
      if (def.kind === "error" && (a.kind === "kill" || a.kind === "trap")) weaker.push(`${name}: ${a.kind} becomes error:${errnoName(def.errno!)} (an allow list gives every call it leaves out the same answer)`);
      else if (def.kind === "error" && a.kind === "error" && a.errno !== def.errno) warnings.push(`${name}: error:${errnoName(a.errno!)} becomes error:${errnoName(def.errno!)} (still refused)`);
      else if (def.kind !== "error" && a.kind === "error") warnings.push(`${name}: error:${errnoName(a.errno!)} becomes kill (stricter: an allow list without SystemCallErrorNumber= kills)`);
    }
    for (const name of SYSTEMD_ALWAYS_ALLOWED) {
      if (syscallNumber(cd.arch, name) === undefined) continue;
      const a = actions.get(name) ?? def;
      if (a.kind !== "allow" && a.kind !== "log") weaker.push(`${name}: ${describeAction(a)} becomes allow (systemd always allows the calls of its @default group)`);
    }
  } else {
    const denied = [...actions].filter(([, a]) => a.kind !== "allow" && a.kind !== "log").sort((a, b) => (a[0] < b[0] ? -1 : 1));
    if (denied.length) {
      directives.push(["SystemCallFilter", "~" + denied.map(([n, a]) => `${n}:${a.kind === "error" ? errnoName(a.errno!) : "kill"}`).join(" ")]);
    }
    for (const [n, a] of denied) if (a.kind === "trap") warnings.push(`${n}: trap becomes kill (systemd cannot trap): stricter`);
  }
  if (def.kind === "log") {
    const quiet = [...actions].filter(([, a]) => a.kind !== "log").map(([n]) => n).sort();
    directives.push(["SystemCallLog", quiet.length ? "~" + quiet.join(" ") : "~"]);
  } else if (logged.length) {
    directives.push(["SystemCallLog", logged.sort().join(" ")]);
  }
  directives.push(["SystemCallArchitectures", "native"], ["NoNewPrivileges", "yes"]);
  for (const p of presets) {
    const m = PRESET_DIRECTIVES[p];
    if (m.directive) directives.push(m.directive.split("=", 2) as [string, string]);
    if (m.differs) weaker.push(`syscall_harden ${p} (${PRESETS[p].systemd}): ${m.differs}`);
  }

  if (weaker.length && !opts.acceptWeaker) {
    throw new ExportError(
      `systemd cannot express ${weaker.length} rule${weaker.length === 1 ? "" : "s"} of this policy as strictly:\n  ${weaker.join("\n  ")}\n` +
        "hint: run the server with pg_seccomp run to enforce them, or add --accept-weaker to export anyway (each is then named in the drop-in's header)",
    );
  }
  const lines = [
    `# pg_seccomp export --format systemd${opts.policyName ? ` of ${opts.policyName}` : ""}.`,
    "# What systemd cannot express, and what this drop-in does instead:",
    ...[...header, ...warnings].map((l) => `#  - ${l}`),
    ...(weaker.length ? ["# Exported LESS strictly than the policy (accepted with --accept-weaker):", ...weaker.map((l) => `#  - ${l}`)] : []),
    "[Service]",
    ...directives.map(([k, v]) => `${k}=${v}`),
    "",
  ];
  return { text: lines.join("\n"), directives, warnings, weaker };
}
