// A starter profile composed from its evidence: the calls seen at run time (learned), the floor
// (profiles/floor.conf: calls test runs cannot be trusted to show), and the calls static analysis
// finds reachable in the server's files. Used by the profile builder (scripts/profile/build.ts)
// and by `run` for a server without a bundled profile (src/launcher/profile-choice.ts, profileFor).
//
// - Allowed: learned ∪ floor, each with its evidence as a one-line comment.
// - Reachable only statically: `log` (allowed, and written to the violation log, so a call no
//   run saw shows up there without killing the server) or `allow`, the caller's choice.
// - Except calls of features the launcher gates or `check` warns about (io_uring, bpf, ptrace,
//   process_vm_*, userfaultfd, NUMA placement, namespaces, personality, id changes, the kernel
//   log, execveat, the mount API, file handles, vmsplice), which a profile never allows on static
//   evidence alone: the default (error, logged) answers them.
// - Nothing reachable is killed (issue 17): a reachable member of a killed high-risk group is
//   named in the log list (it runs and is logged: chown for unix_socket_group and archive tools,
//   keyctl for a KEYRING: Kerberos cache), or in the error list when the kernel would refuse the
//   server's unprivileged user anyway (EPERM: mount, reboot, ...; ENOSYS: calls the kernel no
//   longer has) or it is a gated feature. A named call beats group membership (docs/policy.md),
//   so the kill list stays the readable list of groups and kills only what no analyzed file can
//   reach; the profile lists those calls one by one.
// Pure: strings in, a policy draft and its text out.

import { collate } from "../render/effective-table.js";
import { expandGroup } from "../syscalls/groups.js";
import { syscallNumber, syscallReplacements, type Arch } from "../syscalls/index.js";
import type { AnalyzeResult, SyscallFinding } from "./analyze.js";
import { PolicyDraftBuilder, writePolicyText, type PolicyDraft } from "../policy/write.js";
import { readConfText } from "../policy/conf.js";

export type StaticOnlyAction = "allow" | "log";

/** Never allowed or logged on static evidence alone (see the header). */
export const STATIC_ONLY_WITHHELD: readonly string[] = [
  "io_uring_setup", "io_uring_enter", "io_uring_register",
  "bpf", "ptrace", "process_vm_readv", "process_vm_writev", "userfaultfd",
  "get_mempolicy", "set_mempolicy", "mbind", "move_pages",
  "unshare", "setns", "personality",
  // A server never changes its ids (and has no capability to): a call would be an attack.
  "setuid", "setgid", "setreuid", "setregid", "setresuid", "setresgid", "setfsuid", "setfsgid", "setgroups",
  // Reading the kernel's log, exec of a descriptor (with memfd_create: code that was never a file),
  // the mount API, file handles, acting on another process's memory, and vmsplice's history.
  "syslog", "execveat", "open_tree", "name_to_handle_at", "process_madvise", "process_mrelease", "vmsplice",
  // Taking another process's descriptors (another session's client socket), as process_vm_* reads its memory.
  "pidfd_getfd",
];

/**
 * Members of the killed groups that need, for every use, a capability the server's user never
 * has: unfiltered, the kernel answers them EPERM. A reachable one is denied EPERM by name, which
 * changes nothing a healthy server can observe and keeps the kernel's code behind them out of reach.
 */
export const CAPABILITY_ONLY: readonly string[] = [
  "acct", "chroot", "clock_settime", "settimeofday", "stime", "delete_module", "init_module", "finit_module",
  "ioperm", "iopl", "kexec_load", "kexec_file_load", "lookup_dcookie", "mount", "umount", "umount2", "pivot_root",
  "move_mount", "fsopen", "fsmount", "fsconfig", "fspick", "mount_setattr", "reboot", "swapon", "swapoff",
  "sethostname", "setdomainname", "open_by_handle_at", "vhangup",
];

/** Members of the killed groups the kernel no longer implements (ENOSYS unfiltered): a reachable one is denied ENOSYS by name. */
export const NOT_IN_KERNEL: readonly string[] = ["create_module", "get_kernel_syms", "query_module", "nfsservctl", "uselib", "_sysctl"];

/** One setting's value in a policy file we wrote (floor, bundled profiles), read as policy files are read. */
function settingValue(text: string, name: string): string | undefined {
  return readConfText(text, "profile.conf").settings.filter((s) => s.name === name).at(-1)?.value;
}

/** One list setting's entries in a policy file we wrote (floor, bundled profiles). */
export function settingList(text: string, name: string): string[] | undefined {
  return settingValue(text, name)?.split(",").map((s) => s.trim()).filter(Boolean);
}

export interface Floor {
  readonly allow: readonly string[];
  /** name → tag of its reason. */
  readonly tagOf: ReadonlyMap<string, string>;
  /** tag → why those calls are in the floor. */
  readonly reasons: ReadonlyMap<string, string>;
  readonly kill: string;
  readonly harden: string;
}

/**
 * profiles/floor.conf: the settings, and the reason of each call from its `# [tag] a, b, c: why`
 * lines. Every allowed call must have a reason (throws otherwise: a floor entry nobody can
 * explain is not kept silently).
 */
export function parseFloor(text: string): Floor {
  const allow = settingList(text, "global_syscall_allow");
  const kill = settingValue(text, "global_syscall_kill");
  const harden = settingValue(text, "syscall_harden");
  if (!allow || kill === undefined || harden === undefined) throw new Error("floor: global_syscall_allow, global_syscall_kill or syscall_harden missing");
  const tagOf = new Map<string, string>();
  const reasons = new Map<string, string>();
  for (const m of text.matchAll(/^# \[([a-z0-9-]+)\] ([a-z0-9_, ]+): (.+)$/gm)) {
    reasons.set(m[1]!, m[3]!.trim());
    for (const n of m[2]!.split(",").map((s) => s.trim()).filter(Boolean)) tagOf.set(n, m[1]!);
  }
  const unexplained = allow.filter((n) => !tagOf.has(n));
  if (unexplained.length > 0) throw new Error(`floor: no "# [tag] name: why" line for ${unexplained.join(", ")}`);
  return { allow, tagOf, reasons, kill, harden };
}

/**
 * Names of one arch carried to another: a name the target has stays; one it lacks becomes its
 * modern equivalents there (open → openat, fork → clone, ...), or is dropped when there is none.
 */
export function mapNames(names: Iterable<string>, to: Arch): { mapped: Map<string, string[]>; dropped: string[] } {
  const mapped = new Map<string, string[]>();
  const dropped: string[] = [];
  const add = (target: string, from: string) => {
    const l = mapped.get(target) ?? [];
    if (!l.includes(from)) l.push(from);
    mapped.set(target, l);
  };
  for (const n of names) {
    if (syscallNumber(to, n) !== undefined) add(n, n);
    else {
      const alts = syscallReplacements(to, n);
      if (alts.length === 0) dropped.push(n);
      for (const a of alts) add(a, n);
    }
  }
  return { mapped, dropped: dropped.sort(collate) };
}

/** The evidence a profile we wrote records for its seen calls: name → tags, and the tags' legend. */
export function parseSeenEvidence(text: string): { seen: Map<string, string[]>; legend: Map<string, string> } {
  const seen = new Map<string, string[]>();
  const legend = new Map<string, string>();
  for (const m of text.matchAll(/^#   seen \[([^\]]+)\]: (.+)$/gm)) legend.set(m[1]!, m[2]!);
  for (const m of text.matchAll(/^#   ([a-z0-9_]+): seen ((?:\[[^\]]+\])+)/gm)) seen.set(m[1]!, [...m[2]!.matchAll(/\[([^\]]+)\]/g)].map((t) => t[1]!));
  return { seen, legend };
}

export interface ProfileInput {
  readonly arch: Arch;
  /** Seen at run time: name → short evidence tags (explained in `learnedLegend`). */
  readonly learned: ReadonlyMap<string, readonly string[]>;
  readonly learnedLegend: ReadonlyMap<string, string>;
  /** A note per learned name, e.g. the x86_64 names it was mapped from. */
  readonly learnedNote?: ReadonlyMap<string, string>;
  /** Floor calls (names of `arch`) → the floor tag; `floorNote` per name for mapped names. */
  readonly floor: ReadonlyMap<string, string>;
  readonly floorReasons: ReadonlyMap<string, string>;
  readonly floorNote?: ReadonlyMap<string, string>;
  readonly analysis?: AnalyzeResult;
  readonly staticOnly: StaticOnlyAction;
  readonly kill: string;
  readonly harden: string;
  /** Comment lines (without "# ") at the top. */
  readonly header: readonly string[];
}

export interface ComposedProfile {
  /** The profile as settings with their evidence comments; `text` is it written. */
  readonly draft: PolicyDraft;
  readonly text: string;
  readonly allow: string[];
  readonly staticOnly: string[];
  /** Reachable members of the killed groups, logged by name (never killed). */
  readonly groupLogged: string[];
  /** Reachable members of the killed groups denied by name: `name` or `name:ENOSYS`, as written in global_syscall_error. */
  readonly groupDenied: string[];
  /** What the kill list kills: members of the groups no other list names (none of them reachable). */
  readonly killed: string[];
  /** Reachable and killed: empty by construction (kept as the check the sizes table reports). */
  readonly killedStatic: string[];
  readonly withheldStatic: string[];
  readonly counts: {
    learned: number;
    floorOnly: number;
    staticOnly: number;
    staticTotal: number;
    groupLogged: number;
    groupDenied: number;
    killed: number;
    killedStatic: number;
    withheldStatic: number;
    learnedNotStatic: number;
  };
}

/** "libc.so.6:brk <- postgres via libc.so.6:free": the site, and which library function the executable entered. */
export function staticEvidence(f: SyscallFinding): string {
  const v = f.via[0];
  if (!v) return "static";
  const site = `${v.binary}:${v.function}${v.kind === "wrapper-call" ? ` via ${v.callee}()` : v.kind === "vdso-fallback" ? " (vDSO fallback)" : v.kind === "kernel" ? " (issued by the kernel)" : ""}`;
  if (v.reach !== "call-path" || !v.path || v.path.length === 0) return `static ${site} (no direct call path)`;
  const root = v.path[0]!.split(":")[0]!;
  const entry = v.path.find((hop) => hop !== "..." && hop.split(":")[0] !== root);
  return `static ${site} <- ${root}${entry && entry !== `${v.binary}:${v.function}` ? ` via ${entry}` : ""}`;
}

export function composeProfile(p: ProfileInput): ComposedProfile {
  for (const n of [...p.learned.keys(), ...p.floor.keys()]) {
    if (syscallNumber(p.arch, n) === undefined) throw new Error(`"${n}" is not an ${p.arch} syscall (map the names first)`);
  }
  const statics = new Map((p.analysis?.syscalls ?? []).map((s) => [s.name, s] as const));
  const killGroups = p.kill.split(",").map((g) => g.trim()).filter(Boolean);
  const killed = new Map<string, string>();
  for (const g of killGroups) for (const n of expandGroup(g, p.arch).syscalls) if (!killed.has(n)) killed.set(n, g);

  const allow = [...new Set([...p.learned.keys(), ...p.floor.keys()])].sort(collate);
  const allowSet = new Set(allow);
  const staticOnly: string[] = [];
  const groupLogged: string[] = [];
  const groupDenied: string[] = [];
  /** Why a reachable group member is denied by name, for its evidence line. */
  const deniedWhy = new Map<string, string>();
  const withheldStatic: string[] = [];
  for (const n of [...statics.keys()].sort(collate)) {
    if (allowSet.has(n)) continue;
    if (killed.has(n)) {
      if (NOT_IN_KERNEL.includes(n)) {
        groupDenied.push(`${n}:ENOSYS`);
        deniedWhy.set(n, "not in the kernel: ENOSYS, as unfiltered");
      } else if (CAPABILITY_ONLY.includes(n)) {
        groupDenied.push(n);
        deniedWhy.set(n, "needs a capability the server never has: EPERM, as unfiltered");
      } else if (STATIC_ONLY_WITHHELD.includes(n)) {
        groupDenied.push(n);
        deniedWhy.set(n, "a gated call: EPERM");
      } else groupLogged.push(n);
    } else if (STATIC_ONLY_WITHHELD.includes(n)) withheldStatic.push(n);
    else staticOnly.push(n);
  }
  const named = new Set([...allow, ...staticOnly, ...groupLogged, ...groupDenied.map((e) => e.replace(/:.*/, ""))]);
  const killedNames = [...killed.keys()].filter((n) => !named.has(n)).sort(collate);
  const killedStatic = killedNames.filter((n) => statics.has(n));
  if (killedStatic.length > 0) throw new Error(`reachable calls left killed: ${killedStatic.join(", ")}`);

  const evidence = (n: string): string => {
    const parts: string[] = [];
    const seen = p.learned.get(n);
    if (seen) parts.push(`seen ${seen.map((t) => `[${t}]`).join("")}${p.learnedNote?.get(n) ? ` ${p.learnedNote.get(n)}` : ""}`);
    const tag = p.floor.get(n);
    if (tag) parts.push(`floor [${tag}]${p.floorNote?.get(n) ? ` ${p.floorNote.get(n)}` : ""}`);
    const s = statics.get(n);
    if (s) parts.push(staticEvidence(s));
    else if (p.analysis) parts.push("not found statically");
    return `  ${n}: ${parts.join("; ")}`;
  };

  const learnedOnly = allow.filter((n) => p.learned.has(n)).length;
  const d = new PolicyDraftBuilder();
  d.set("syscall_error_errno", "EPERM");
  d.set("global_syscall_default", "error");
  d.blank().comment(
    "Hardening presets (docs/policy.md, \"Hardening presets\"): no new namespaces (clone without",
    "namespace flags, clone3 ENOSYS so glibc falls back to clone, no unshare or setns), sockets only",
    "for AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, personality locked, no setuid/setgid files,",
    "no TIOCSTI/TIOCLINUX. They apply on top of the lists here, in every process: the stricter",
    "answer wins. To leave one out, write e.g. 'all, !address_families'.",
  );
  d.set("syscall_harden", p.harden);
  d.blank().comment(
    "Evidence, one line per call: seen [tag] = observed at run time (tags below); floor [tag] =",
    "profiles/floor.conf (reasons below); static = pg_seccomp analyze found a site: the function",
    "holding it, and the library function through which the executable reaches it.",
  );
  for (const [t, desc] of p.learnedLegend) d.comment(`  seen [${t}]: ${desc}`);
  for (const [t, desc] of p.floorReasons) if ([...p.floor.values()].includes(t)) d.comment(`  floor [${t}]: ${desc}`);
  d.blank();
  d.comment(`Allowed: seen at run time or in the floor (${allow.length}: ${learnedOnly} seen, ${allow.length - learnedOnly} floor only).`);
  for (const n of allow) d.comment(evidence(n));
  d.set("global_syscall_allow", (p.staticOnly === "allow" ? [...allow, ...staticOnly].sort(collate) : allow).join(", "));
  d.blank();
  if (p.analysis) {
    d.comment(`Reachable only statically (${staticOnly.length}): never seen at run time, not in the floor. ${p.staticOnly === "log" ? "Logged: they run, and each" : "Allowed (--static-only allow): they run; with log, each"}`);
    d.comment("call is written to the violation log, so a path no test run reached shows up there without");
    d.comment("killing the server.");
    for (const n of staticOnly) d.comment(`  ${n}: ${staticEvidence(statics.get(n)!)}`);
    d.comment(`Reachable members of the killed groups (${groupLogged.length}), never seen, not in the floor: logged, never killed (the`);
    d.comment("server, its libraries or a module can make them: chown for unix_socket_group, keyctl for a KEYRING:");
    d.comment("Kerberos cache). A name here beats its group in the kill list below.");
    for (const n of groupLogged) d.comment(`  ${n}: ${staticEvidence(statics.get(n)!)} (in ${killed.get(n)})`);
    const logged = [...(p.staticOnly === "log" ? staticOnly : []), ...groupLogged].sort(collate);
    if (logged.length > 0) d.set("global_syscall_log", logged.join(", "));
    if (p.staticOnly === "allow") d.comment(`(reachable only statically: in global_syscall_allow above)`);
    d.blank();
    d.comment(`Reachable members of the killed groups denied by name (${groupDenied.length}): the kernel refuses them to the`);
    d.comment("server's user anyway (a capability it never has, or a call the kernel no longer has), or a gated");
    d.comment("call. Denied with that errno and logged, never killed; a name here beats its group in the kill list.");
    for (const e of groupDenied) {
      const n = e.replace(/:.*/, "");
      d.comment(`  ${n}: ${staticEvidence(statics.get(n)!)} (in ${killed.get(n)}; ${deniedWhy.get(n)})`);
    }
    if (groupDenied.length > 0) d.set("global_syscall_error", groupDenied.join(", "));
    d.blank();
    d.comment(`Reachable statically but not allowed (${withheldStatic.length}): features pg_seccomp gates or \`check\` warns about`);
    d.comment("(io_uring, bpf, ptrace, process_vm_*, userfaultfd, NUMA placement, namespaces, personality): the default");
    d.comment("(error, logged) answers them; docs/profiles.md, \"Features with syscalls of their own\".");
    for (const n of withheldStatic) d.comment(`  ${n}: ${staticEvidence(statics.get(n)!)}`);
    d.blank();
    d.comment(`Killed (${killedNames.length}): the members of the groups below that no list above names. Not one is reachable:`);
    d.comment("no site in postgres, its libraries or the analyzed modules makes them (static analysis finds every");
    d.comment("call a traced run made). A healthy server cannot make them; the review asked that they be killable.");
    const byGroup = new Map<string, string[]>();
    for (const n of killedNames) byGroup.set(killed.get(n)!, [...(byGroup.get(killed.get(n)!) ?? []), n]);
    for (const [g, names] of byGroup) d.comment(`  ${g}: ${names.join(", ")}`);
  } else {
    d.comment("High-risk groups (the review asked that they be killable). Names in the allow list above win");
    d.comment("over group membership, so nothing seen at run time or in the floor is killed.");
  }
  d.set("global_syscall_kill", p.kill);
  const draft = d.draft([...p.header, `arch: ${p.arch}`]);
  const learnedNotStatic = p.analysis ? [...p.learned.keys()].filter((n) => !statics.has(n)).length : 0;
  return {
    draft,
    text: writePolicyText(draft),
    allow,
    staticOnly,
    groupLogged,
    groupDenied,
    killed: killedNames,
    killedStatic,
    withheldStatic,
    counts: {
      learned: p.learned.size,
      floorOnly: allow.length - learnedOnly,
      staticOnly: staticOnly.length,
      staticTotal: statics.size,
      groupLogged: groupLogged.length,
      groupDenied: groupDenied.length,
      killed: killedNames.length,
      killedStatic: killedStatic.length,
      withheldStatic: withheldStatic.length,
      learnedNotStatic,
    },
  };
}
