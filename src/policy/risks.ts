// Risky things a policy allows, for `pg_seccomp check` to warn about: calls that open kernel
// attack surface far beyond what PostgreSQL needs (namespaces, io_uring, bpf, ...) or that
// undo other protections (ptrace, fileless exec). Pure: works on the policy's decisions, the
// same ones the compiler and `show` use, so a hardening preset or an argument condition that
// denies the risky form of a call silences the warning.

import { contextDecisions, contextFilters, contextKey, decisionFor, otherDatabaseName, policyContexts, type ContextSpec, type Decision, type Leaf } from "./decision.js";
import { SQL_KIND_ROUTES, SQL_KINDS, type SqlKind } from "./model.js";
import { conditionHolds } from "./evaluate.js";
import { resolveFilter, rulesByTier, type FilterSpec, type Policy, type ResolvedFilter } from "./policy.js";
import type { SourceLoc } from "./errors.js";
import type { PresetName } from "./harden.js";
import { allSyscalls, syscallNumber, type Arch } from "../syscalls/index.js";

/** One call to try: a syscall, with arguments (the risky form) or without (any form at all). */
interface Probe {
  syscall: string;
  args?: readonly bigint[];
  /** How the warning names it, e.g. "clone with CLONE_NEWUSER". */
  label: string;
}

interface RiskDef {
  id: string;
  /** Alternatives: the risk is there when any probe is allowed. */
  probes: readonly Probe[];
  /** And, when set, also one of these (fileless exec: memfd_create and an exec). */
  alsoOneOf?: readonly Probe[];
  why: string;
  fix: string;
  /** The preset that removes it, if any. */
  preset?: PresetName;
}

const CLONE_NEWUSER = 0x10000000n;
const SIGCHLD = 17n;
const any = (syscall: string): Probe => ({ syscall, label: syscall });

export const RISKS: readonly RiskDef[] = [
  {
    id: "namespaces",
    probes: [
      { syscall: "unshare", args: [CLONE_NEWUSER], label: "unshare" },
      { syscall: "clone", args: [CLONE_NEWUSER | SIGCHLD], label: "clone with CLONE_NEWUSER" },
      { syscall: "clone3", label: "clone3 (its flags cannot be checked)" },
      { syscall: "setns", args: [0n, 0n], label: "setns" },
    ],
    why: "a process can create a user namespace and hold CAP_NET_ADMIN and CAP_SYS_ADMIN inside it, which reaches nf_tables and other kernel code otherwise reserved for root",
    fix: "add syscall_harden = 'namespaces' (or 'all')",
    preset: "namespaces",
  },
  {
    id: "io_uring",
    probes: [any("io_uring_setup"), any("io_uring_enter"), any("io_uring_register")],
    why: "io_uring performs reads, writes, opens, connects and more without making those syscalls, so no per-syscall filter sees them",
    fix: "remove io_uring_setup, io_uring_enter and io_uring_register from the allow lists, unless the server is PostgreSQL 18+ with io_method = io_uring (then pg_seccomp run says so loudly)",
  },
  {
    id: "bpf",
    probes: [any("bpf")],
    why: "bpf loads programs into the kernel (a large attack surface, and with privilege, tracing of other processes)",
    fix: "remove bpf from the allow lists, or deny @privileged",
  },
  {
    id: "ptrace",
    probes: [any("ptrace")],
    why: "ptrace lets a process read and rewrite the memory of other processes of the same user, other backends included",
    fix: "remove ptrace from the allow lists, or kill @debug",
  },
  {
    id: "process_vm",
    probes: [any("process_vm_readv"), any("process_vm_writev")],
    why: "process_vm_readv/writev read and write other processes' memory, as ptrace does",
    fix: "remove process_vm_readv and process_vm_writev from the allow lists",
  },
  {
    id: "userfaultfd",
    probes: [any("userfaultfd")],
    why: "userfaultfd lets a process stall the kernel at a chosen memory access, the usual tool for winning kernel race conditions",
    fix: "remove userfaultfd from the allow lists",
  },
  {
    id: "fileless_exec",
    probes: [any("memfd_create")],
    alsoOneOf: [any("execve"), any("execveat")],
    why: "a process can write a program into an anonymous memfd and execute it, running code that never touches a file system the DBA can inspect",
    fix: "deny execve and execveat where no program needs to run (e.g. session_syscall_error = '*, execve, execveat'), or memfd_create where it is not needed",
  },
  {
    id: "personality",
    probes: [
      { syscall: "personality", args: [0x0040000n], label: "personality(ADDR_NO_RANDOMIZE)" },
      { syscall: "personality", args: [6n], label: "personality(PER_BSD)" },
    ],
    why: "a process can change its execution domain, e.g. turn off address space randomisation for the programs it runs",
    fix: "add syscall_harden = 'personality' (or 'all')",
    preset: "personality",
  },
  {
    id: "address_families",
    probes: [
      { syscall: "socket", args: [17n, 3n, 0n], label: "AF_PACKET" },
      { syscall: "socket", args: [16n, 3n, 12n], label: "AF_NETLINK with NETLINK_NETFILTER" },
      { syscall: "socket", args: [38n, 5n, 0n], label: "AF_ALG" },
      { syscall: "socket", args: [40n, 1n, 0n], label: "AF_VSOCK" },
    ],
    why: "socket is allowed for every address family: each family is kernel code of its own (packet sockets, netfilter, crypto) that PostgreSQL never uses",
    fix: "add syscall_harden = 'address_families' (or 'all')",
    preset: "address_families",
  },
  {
    id: "suid_sgid",
    probes: [
      { syscall: "chmod", args: [0n, 0o4755n], label: "chmod" },
      { syscall: "fchmod", args: [0n, 0o4755n], label: "fchmod" },
      { syscall: "fchmodat", args: [0n, 0n, 0o4755n], label: "fchmodat" },
    ],
    why: "a process can make setuid or setgid files, which the server's user can leave behind for later use",
    fix: "add syscall_harden = 'suid_sgid' (or 'all')",
    preset: "suid_sgid",
  },
  {
    id: "tiocsti",
    probes: [{ syscall: "ioctl", args: [0n, 0x5412n], label: "ioctl(TIOCSTI)" }],
    why: "TIOCSTI pushes input into a terminal the server holds open, which a shell reading that terminal would run",
    fix: "add syscall_harden = 'tiocsti' (or 'all')",
    preset: "tiocsti",
  },
];

export interface PolicyRisk {
  id: string;
  /** The allowed calls that make the risk, as labels ("unshare", "clone with CLONE_NEWUSER"). */
  calls: string[];
  /** Context keys where it is allowed, in policyContexts order. */
  contexts: string[];
  /** True when every context of the policy allows it. */
  everyContext: boolean;
  /** Arches where it was found (a subset when the policy differs by arch). */
  arches: Arch[];
  /** Where the allowing entries (or defaults) were written. */
  locs: SourceLoc[];
  why: string;
  fix: string;
}

function leaves(d: Decision): Leaf[] {
  return d.kind === "leaf" ? [d] : [...leaves(d.then), ...leaves(d.else)];
}

function evalDecision(d: Decision, args: readonly bigint[]): Leaf {
  while (d.kind === "branch") d = d.conds.every((c) => conditionHolds(c, args)) ? d.then : d.else;
  return d;
}

const lets = (l: Leaf) => l.action.kind === "allow" || l.action.kind === "log";

/** The risks a policy has, on the given arches, in every context it distinguishes. */
export function policyRisks(policy: Policy, arches: readonly Arch[]): PolicyRisk[] {
  const contexts = policyContexts(policy);
  const found = new Map<string, { calls: Set<string>; contexts: Set<string>; arches: Set<Arch>; locs: Map<string, SourceLoc> }>();

  for (const arch of arches) {
    const resolved = new Map<FilterSpec, ResolvedFilter>();
    const resolve = (f: FilterSpec): ResolvedFilter => {
      let r = resolved.get(f);
      if (!r) resolved.set(f, (r = resolveFilter(f, arch)));
      return r;
    };
    for (const c of contexts) {
      const cd = contextDecisions(policy, arch, c);
      const allowed = (p: Probe): boolean => {
        const nr = syscallNumber(arch, p.syscall);
        if (nr === undefined) return false;
        const d = decisionFor(cd, nr);
        return p.args ? lets(evalDecision(d, padded(p.args))) : leaves(d).some(lets);
      };
      for (const risk of RISKS) {
        const hits = risk.probes.filter(allowed);
        if (hits.length === 0) continue;
        const also = risk.alsoOneOf?.filter(allowed);
        if (also && also.length === 0) continue;
        const entry = found.get(risk.id) ?? { calls: new Set(), contexts: new Set(), arches: new Set(), locs: new Map() };
        found.set(risk.id, entry);
        for (const p of [...hits, ...(also ?? [])]) {
          entry.calls.add(p.label);
          for (const loc of allowingLocs(policy, arch, c, p, resolve)) entry.locs.set(`${loc.file}:${loc.line}`, loc);
        }
        entry.contexts.add(contextKey(c));
        entry.arches.add(arch);
      }
    }
  }
  const allKeys = contexts.map(contextKey);
  return [...RISKS.filter((r) => found.has(r.id)).map((r) => {
    const f = found.get(r.id)!;
    return {
      id: r.id,
      calls: [...f.calls],
      contexts: allKeys.filter((k) => f.contexts.has(k)),
      everyContext: allKeys.every((k) => f.contexts.has(k)),
      arches: arches.filter((a) => f.arches.has(a)),
      locs: [...f.locs.values()],
      why: r.why,
      fix: r.fix,
    };
  }), ...sqlKindsOpened(policy, arches)];
}

/** A kind that runs SQL, as a context, and the session context it is compared with. */
function sqlKindContexts(policy: Policy): Array<{ kind: SqlKind; c: ContextSpec; opened: FilterSpec }> {
  const out: Array<{ kind: SqlKind; c: ContextSpec; opened: FilterSpec }> = [];
  for (const kind of SQL_KINDS) {
    if (kind === "parallel_worker") continue; // its leader's session filters always apply
    const opened = kind === "walsender" ? policy.walsenderWithDatabase : policy.processes.get(kind);
    if (!opened) continue;
    out.push({ kind, c: kind === "walsender" ? { context: kind, database: otherDatabaseName(policy) } : { context: kind }, opened });
  }
  return out;
}

/**
 * Kinds that run SQL a superuser can write, opened by the policy beyond the session's lists on
 * purpose (their own <kind>_syscall_* settings): the calls they let through that every session
 * denies, with the SQL that reaches them there.
 */
export function sqlKindsOpened(policy: Policy, arches: readonly Arch[]): PolicyRisk[] {
  const out: PolicyRisk[] = [];
  for (const { kind, c, opened } of sqlKindContexts(policy)) {
    const calls = new Set<string>();
    const found = new Set<Arch>();
    const locs = new Map<string, SourceLoc>();
    for (const arch of arches) {
      const kd = contextDecisions(policy, arch, c);
      const sd = contextDecisions(policy, arch, { context: "session" });
      const own = resolveFilter(opened, arch);
      for (const s of allSyscalls(arch)) {
        if (!leaves(decisionFor(kd, s.nr)).some(lets) || leaves(decisionFor(sd, s.nr)).some(lets)) continue;
        calls.add(s.name);
        found.add(arch);
        const rules = own.rules.get(s.nr)?.rules.filter((r) => lets({ kind: "leaf", action: r.action, source: "" }) && !r.entry.inheritedFrom) ?? [];
        for (const r of rules) locs.set(`${r.entry.loc.file}:${r.entry.loc.line}`, r.entry.loc);
        if (rules.length === 0 && opened.defaultLoc) locs.set(`${opened.defaultLoc.file}:${opened.defaultLoc.line}`, opened.defaultLoc);
      }
    }
    if (calls.size === 0) continue;
    const names = [...calls].sort((a, b) => Number(isExec(b)) - Number(isExec(a)) || a.localeCompare(b));
    const shown = names.length > 8 ? [...names.slice(0, 8), `and ${names.length - 8} more`] : names;
    const programs = names.some(isExec) ? "; with execve a superuser's SQL runs programs there (COPY ... TO PROGRAM, a PL's system())" : "";
    out.push({
      id: "sql_kind_opened",
      calls: shown,
      contexts: [contextKey(c)],
      everyContext: false,
      arches: arches.filter((a) => found.has(a)),
      locs: [...locs.values()],
      why: `${kind === "walsender" ? "a walsender with a database" : kind} runs ${SQL_KIND_ROUTES[kind]}, and sessions deny these calls: the policy's ${kind}_syscall_* settings let that SQL make them${programs}`,
      fix: `leave ${kind}_syscall_* out (the kind then has the session's lists), or deny these calls there too; keep them only if that kind needs them`,
    });
  }
  return out;
}

const isExec = (name: string) => name === "execve" || name === "execveat";

function padded(args: readonly bigint[]): bigint[] {
  return [0, 1, 2, 3, 4, 5].map((i) => args[i] ?? 0n);
}

/**
 * Where the policy lets this call through in this context: the allow (or log) entries of each
 * filter that match it, or the filter's default when none does. Hardening presets never allow
 * anything of their own, so they are not named.
 */
function allowingLocs(
  policy: Policy,
  arch: Arch,
  c: ContextSpec,
  p: Probe,
  resolve: (f: FilterSpec) => ResolvedFilter,
): SourceLoc[] {
  const nr = syscallNumber(arch, p.syscall)!;
  const locs: SourceLoc[] = [];
  for (const f of contextFilters(policy, c)) {
    if (f.name.startsWith("harden:")) continue;
    // The tier that decides: the most specific with a matching rule (with no arguments given,
    // any rule may match, so every tier counts).
    const tiers = rulesByTier(resolve(f).rules.get(nr)?.rules ?? []);
    const matching = p.args
      ? tiers.map((t) => t.filter((r) => r.conditions.every((cond) => conditionHolds(cond, padded(p.args!))))).find((t) => t.length > 0) ?? []
      : tiers.flat();
    const allowing = matching.filter((r) => r.action.kind === "allow" || r.action.kind === "log");
    if (allowing.length > 0) locs.push(...allowing.map((r) => r.entry.loc));
    else if (matching.length === 0 && (f.defaultAction.kind === "allow" || f.defaultAction.kind === "log") && f.defaultLoc) locs.push(f.defaultLoc);
  }
  return locs;
}

/** One line for a risk: what, where, why, and what to do. */
export function formatRisk(r: PolicyRisk): string {
  const where = r.everyContext ? "every context" : r.contexts.length > 6 ? `${r.contexts.slice(0, 6).join(", ")} and ${r.contexts.length - 6} more` : r.contexts.join(", ");
  const locs = r.locs.slice(0, 3).map((l) => `${l.file}:${l.line}`).join(", ") + (r.locs.length > 3 ? ", ..." : "");
  const arch = r.arches.length === 1 ? ` on ${r.arches[0]}` : "";
  return `${r.id}: ${r.calls.join(", ")} allowed in ${where}${arch}${locs ? ` (${locs})` : ""}: ${r.why}; ${r.fix}`;
}
