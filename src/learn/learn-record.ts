// `pg_seccomp learn`: the learning policy the server runs under, the record of what it used
// (per context, first seen and count), merging rounds, and reading that record back from an
// earlier output (--merge). Pure.

import { type Action } from "../policy/actions.js";
import { contextKey, type ContextKind } from "../policy/decision.js";
import { DEFAULT_ERROR_ERRNO, type FilterSpec, type Policy, type PolicyEntry } from "../policy/policy.js";
import type { ViolationEvent } from "../host/violation-event.js";

// ---------------------------------------------------------------------------------------------
// 1. The learning policy

function learningAction(a: Action): Action {
  return a.kind === "allow" ? { kind: "allow" } : { kind: "log" };
}

function learningFilter(f: FilterSpec): FilterSpec {
  return {
    ...f,
    defaultAction: learningAction(f.defaultAction),
    entries: f.entries.map((e): PolicyEntry => {
      const { errno: _errno, ...rest } = e;
      return { ...rest, action: learningAction(e.action) };
    }),
  };
}

/**
 * The policy a learning run installs. Every filter of the base (global, session, roles,
 * databases, backend types) keeps its shape, lists and argument conditions; only the actions
 * change: allow stays allow, every other action (defaults, log/error/trap/kill lists) becomes
 * log. So for every call in every context the learning decision is allow exactly where the
 * base's is allow (stacking picks the most restrictive, and log is the only thing above allow
 * left), and log everywhere else. Unknown syscall numbers follow the default (log when the base
 * denies). Calls every context allows are decided in the kernel (free after the first call);
 * logged ones go to the supervisor, which lets them run and reports them. Without a base
 * (`--base none`) everything is logged. The base's hardening presets stay in force: they deny
 * in the kernel as they will under the learned policy, so the server learned is the server that
 * will run (a call they deny is reported as a warning, not learned).
 */
export function learningPolicy(base: Policy | undefined): Policy {
  if (!base) {
    const global: FilterSpec = { name: "global", defaultAction: { kind: "log" }, entries: [] };
    return {
      enabled: true, errorErrno: DEFAULT_ERROR_ERRNO, unknownAction: "default",
      global, session: { ...global, name: "session" },
      roles: new Map(), databases: new Map(), processes: new Map(), notes: [], files: [],
    };
  }
  const mapAll = <K>(m: Map<K, FilterSpec>) => new Map([...m].map(([k, f]) => [k, learningFilter(f)] as const));
  return {
    enabled: true,
    errorErrno: base.errorErrno,
    unknownAction: "default",
    global: learningFilter(base.global),
    session: learningFilter(base.session),
    roles: mapAll(base.roles),
    databases: mapAll(base.databases),
    processes: mapAll(base.processes),
    ...(base.walsenderWithDatabase ? { walsenderWithDatabase: learningFilter(base.walsenderWithDatabase) } : {}),
    ...(base.hardening ? { hardening: base.hardening } : {}),
    // The base's choice to leave the server dumpable holds while learning too.
    ...(base.serverDumpable ? { serverDumpable: true } : {}),
    notes: [],
    files: [...base.files],
  };
}

// ---------------------------------------------------------------------------------------------
// 2. Recording

export interface FirstSeen {
  /** ISO time. */
  time: string;
  pid: number;
  /** The process title (or an exec'd program's command line). */
  process: string;
  /** The full context key where it was first seen: "postmaster", "session/alice/sales". */
  context: string;
}

export interface LearnedCall {
  count: number;
  first: FirstSeen;
}

/**
 * What was learned: context key -> syscall name -> first seen and count. Keys from a live run
 * are full keys (contextKey: "session/alice/sales", "checkpointer"); keys read back from a
 * previous output are as coarse as that output was written ("session", or "session/alice" with
 * --per-role).
 */
export type Learned = Map<string, Map<string, LearnedCall>>;

export function eventContextKey(e: Pick<ViolationEvent, "context" | "role" | "database">): string {
  return contextKey({
    context: e.context as ContextKind,
    ...(e.role !== undefined ? { role: e.role } : {}),
    ...(e.database !== undefined ? { database: e.database } : {}),
  });
}

export function parseContextKey(key: string): { context: string; role?: string; database?: string } {
  const [context = "", role, database] = key.split("/");
  return { context, ...(role ? { role } : {}), ...(database ? { database } : {}) };
}

export function cleanTitle(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
}

/** Records one event; true when (context, syscall) was not known before. */
export function recordEvent(learned: Learned, e: ViolationEvent): boolean {
  const key = eventContextKey(e);
  let calls = learned.get(key);
  if (!calls) learned.set(key, (calls = new Map()));
  const cur = calls.get(e.syscall);
  if (cur) {
    cur.count++;
    return false;
  }
  calls.set(e.syscall, { count: 1, first: { time: e.time, pid: e.pid, process: cleanTitle(e.process), context: key } });
  return true;
}

export function addCall(into: Map<string, LearnedCall>, name: string, c: LearnedCall): void {
  const cur = into.get(name);
  if (!cur) into.set(name, { count: c.count, first: { ...c.first } });
  else {
    cur.count += c.count;
    if (c.first.time < cur.first.time) cur.first = { ...c.first };
  }
}

/** The union of two learned sets: counts add up, the earlier first sighting wins. */
export function mergeLearned(a: Learned, b: Learned): Learned {
  const out: Learned = new Map();
  for (const src of [a, b]) {
    for (const [key, calls] of src) {
      let into = out.get(key);
      if (!into) out.set(key, (into = new Map()));
      for (const [name, c] of calls) addCall(into, name, c);
    }
  }
  return out;
}

/** Role names that can be written in a setting name (session_syscall_allow.<role>). */
const SETTING_ROLE = /^[a-z_][a-z0-9_$]*$/;

/**
 * The key a learned context is written under: the context kind, and for sessions with
 * --per-role the role (when its name can be a setting suffix). Parallel workers are written as
 * one context: what they use is allowed in every session overlay (they run under their
 * leader's).
 */
export function outputKey(key: string, perRole: boolean): string {
  const { context, role } = parseContextKey(key);
  if (context === "session" && perRole && role !== undefined && SETTING_ROLE.test(role)) return `session/${role}`;
  return context;
}

/** The learned set at the granularity of the output. */
export function groupLearned(learned: Learned, perRole: boolean): Learned {
  const out: Learned = new Map();
  for (const [key, calls] of learned) {
    const k = outputKey(key, perRole);
    let into = out.get(k);
    if (!into) out.set(k, (into = new Map()));
    for (const [name, c] of calls) addCall(into, name, c);
  }
  return out;
}

export interface NewCall {
  context: string;
  syscall: string;
  first: FirstSeen;
}

/**
 * What this round learned that the previous rounds had not, at the output's granularity: a
 * syscall is new in a context unless a previous round saw it there (a previous round written
 * without roles covers every role's session).
 */
export function newCalls(previous: Learned, round: Learned, perRole: boolean): NewCall[] {
  const prev = groupLearned(previous, perRole);
  const cur = groupLearned(round, perRole);
  const out: NewCall[] = [];
  for (const [key, calls] of cur) {
    for (const [name, c] of calls) {
      const coarse = parseContextKey(key).context;
      if (prev.get(key)?.has(name) || prev.get(coarse)?.has(name)) continue;
      out.push({ context: key, syscall: name, first: c.first });
    }
  }
  return out.sort((a, b) => a.context.localeCompare(b.context) || a.syscall.localeCompare(b.syscall));
}

// ---------------------------------------------------------------------------------------------
// 4. Reading an earlier output back (--merge)

export interface LearnedFile {
  learned: Learned;
  rounds: number;
  since?: string;
  base?: string;
  perRole?: boolean;
}

const SEEN_RE = /^#   (\S+): first seen (\S+) in (\S+) \(pid (\d+): (.*)\), (\d+) calls?$/;

/** The learned calls recorded in an earlier output's comments, and its round count. */
export function parseLearnedPolicy(text: string): LearnedFile {
  const learned: Learned = new Map();
  let rounds = 0;
  let base: string | undefined;
  let since: string | undefined;
  let perRole: boolean | undefined;
  let block: string | undefined;
  for (const line of text.split("\n")) {
    const h = /^# learned in (\S+): /.exec(line);
    if (h) {
      block = h[1]!;
      continue;
    }
    const m = block !== undefined ? SEEN_RE.exec(line) : null;
    if (m && block !== undefined) {
      let calls = learned.get(block);
      if (!calls) learned.set(block, (calls = new Map()));
      addCall(calls, m[1]!, { count: Number(m[6]), first: { time: m[2]!, pid: Number(m[4]), process: m[5]!, context: m[3]! } });
      continue;
    }
    block = undefined;
    const r = /^# rounds:\s+(\d+)/.exec(line);
    if (r) rounds = Number(r[1]);
    const si = /^# since:\s+(\S+)/.exec(line);
    if (si) since = si[1]!;
    const b = /^# base:\s+(.*)$/.exec(line);
    if (b) base = b[1]!.trim();
    const p = /^# per-role:\s+(yes|no)/.exec(line);
    if (p) perRole = p[1] === "yes";
  }
  return { learned, rounds, ...(since !== undefined ? { since } : {}), ...(base !== undefined ? { base } : {}), ...(perRole !== undefined ? { perRole } : {}) };
}
