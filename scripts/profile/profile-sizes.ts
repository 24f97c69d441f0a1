// The counts docs/profiles.md reports for a profile or a learned policy, read from the file
// itself (its lists and its evidence lines), and the recall of a policy against what strace saw
// of the broad workload. Used by sizes.ts (the docs' tables) and by test/learn-safe.test.ts
// (the counts of the policies it learns).

import { settingList } from "../../src/analyze/profile.js";
import { expandGroup } from "../../src/syscalls/groups.js";
import { allSyscalls, type Arch } from "../../src/syscalls/index.js";
import { collate } from "../../src/render/effective-table.js";

export interface PolicySizes {
  arch: Arch;
  allowed: string[];
  /** Allowed with run-time evidence ("seen [...]" on its evidence line). */
  seen: string[];
  logged: string[];
  /** Logged calls that are members of a killed group (reachable, so named: a name beats its group). */
  loggedOfKilledGroups: string[];
  /** Denied by name (global_syscall_error), errno suffixes dropped. */
  deniedByName: string[];
  /** Every other call of the arch's table that no list names: the default answers it. */
  deniedByDefault: number;
  /** The members of the kill list's groups that no other list names: what the kernel kills. */
  killed: string[];
  /** Of those, the ones static analysis finds (an evidence line says "static"): goal 0. */
  killedReachable: string[];
  /** "Reachable statically but not allowed (N)" of the file's comments. */
  withheld: number;
  /** The analysis's whole set, when the header states it ("(N syscalls"), else undefined. */
  staticSet: number | undefined;
  /** Seen calls with static evidence too. */
  seenStatic: number;
  /** Lists other than the global ones (a context narrowed), by setting name. */
  contextLists: string[];
  /** The kill list's groups and the group of each of their members. */
  groupOf: Map<string, string>;
}

/**
 * The evidence line of each call: `#   name: seen [...]; floor [...]; static ...`, the first for
 * each name (a learned policy's record section further down has `#   name: first seen ...`).
 */
export function evidenceLines(text: string): Map<string, string> {
  const ev = new Map<string, string>();
  for (const m of text.matchAll(/^#   ([a-z0-9_]+)(?: \(@[a-z-]+\))?: (.*)$/gm)) if (!ev.has(m[1]!)) ev.set(m[1]!, m[2]!);
  return ev;
}

export function policySizes(text: string, arch: Arch): PolicySizes {
  const allowed = settingList(text, "global_syscall_allow") ?? [];
  const logged = settingList(text, "global_syscall_log") ?? [];
  const deniedByName = (settingList(text, "global_syscall_error") ?? []).map((e) => e.replace(/:.*/, ""));
  const groups = settingList(text, "global_syscall_kill") ?? [];
  const ev = evidenceLines(text);
  const named = new Set([...allowed, ...logged, ...deniedByName]);
  const groupOf = new Map<string, string>();
  for (const g of groups) for (const n of expandGroup(g, arch).syscalls) if (!groupOf.has(n)) groupOf.set(n, g);
  const killed = [...groupOf.keys()].filter((n) => !named.has(n));
  const seen = allowed.filter((n) => ev.get(n)?.startsWith("seen"));
  const total = /\((\d+) syscalls[;)]/.exec(text)?.[1];
  return {
    arch,
    allowed,
    seen,
    logged,
    loggedOfKilledGroups: logged.filter((n) => groupOf.has(n)),
    deniedByName,
    deniedByDefault: allSyscalls(arch).length - new Set([...named, ...killed]).size,
    killed,
    killedReachable: killed.filter((n) => /(^|; )static /.test(ev.get(n) ?? "")),
    withheld: Number(/Reachable statically but not allowed \((\d+)\)/.exec(text)?.[1] ?? 0),
    staticSet: total === undefined ? undefined : Number(total),
    seenStatic: seen.filter((n) => ev.get(n)?.includes("static ")).length,
    contextLists: [...text.matchAll(/^(?!global_)([a-z0-9_]+_syscall_(?:allow|log|error|kill|default))\s*=/gm)].map((m) => m[1]!),
    groupOf,
  };
}

/** The tags build.ts gives the rounds of its runs (`--tracer strace`: under strace -f -c). */
export const STRACE_ROUND_TAGS = ["r1", "standby", "r2"] as const;

/**
 * What strace saw of the broad workload, from a profile `build.js --tracer strace` wrote: the calls
 * whose evidence carries a round tag (r1, standby, r2), provided its header says the rounds ran
 * under strace. Undefined for a profile without such a run.
 */
export function straceSeen(profileText: string): Set<string> | undefined {
  if (!/^#   seen \[r1\]: round 1, under strace -f -c/m.test(profileText)) return undefined;
  const out = new Set<string>();
  for (const m of profileText.matchAll(/^#   ([a-z0-9_]+): seen ((?:\[[^\]]+\])+)/gm)) {
    const tags = [...m[2]!.matchAll(/\[([^\]]+)\]/g)].map((t) => t[1]!);
    if (tags.some((t) => (STRACE_ROUND_TAGS as readonly string[]).includes(t))) out.add(m[1]!);
  }
  return out;
}

export interface Recall {
  reference: number;
  allowed: string[];
  logged: string[];
  denied: string[];
  killed: string[];
  /** (allowed + logged) / reference: the calls the workload made that the policy lets run. */
  recall: number;
}

/** How a policy's global lists answer each call of `reference` (what strace saw). */
export function recallAgainst(sizes: PolicySizes, reference: ReadonlySet<string>): Recall {
  const allow = new Set(sizes.allowed);
  const log = new Set(sizes.logged);
  const killed = new Set(sizes.killed);
  const r: Recall = { reference: reference.size, allowed: [], logged: [], denied: [], killed: [], recall: 0 };
  for (const n of [...reference].sort(collate)) {
    if (allow.has(n)) r.allowed.push(n);
    else if (log.has(n)) r.logged.push(n);
    else if (killed.has(n)) r.killed.push(n);
    else r.denied.push(n);
  }
  r.recall = reference.size === 0 ? 1 : (r.allowed.length + r.logged.length) / reference.size;
  return r;
}

/** The major of the server a learned policy names (`# server: postgres (PostgreSQL) 15.20 ...`) or a profile file's name. */
export function policyMajor(name: string, text: string): number | undefined {
  const m = /^# server: .*\(PostgreSQL\) (\d+)/m.exec(text) ?? /postgresql-(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** The arch a file names: `postgresql-18-aarch64.conf`, or a `# arch: NAME` line. */
export function policyArch(name: string, text: string): Arch | undefined {
  const m = /-(x86_64|aarch64)[-.]/.exec(name) ?? /^# arch:\s+(x86_64|aarch64)\b/m.exec(text);
  return m ? (m[1] as Arch) : undefined;
}
