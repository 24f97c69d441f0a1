import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { parsePolicyText, PROCESS_KINDS, type Policy } from "../policy/policy.js";
import { contextDecisions, contextKey, decisionFor, policyContexts, type ContextDecisions, type ContextSpec, type Decision } from "../policy/decision.js";
import { conditionHolds, evaluatePolicy } from "../policy/evaluate.js";
import { sameAction, type Action } from "../policy/actions.js";
import { withoutPresets } from "../policy/harden.js";
import {
  AUDIT_ARCH_X86_64, SECCOMP_RET_ACTION_FULL, SECCOMP_RET_ALLOW, SECCOMP_RET_USER_NOTIF, type SeccompData,
} from "../seccomp/index.js";
import { compileFilter } from "../bpf/emulator.js";
import { compose } from "../compile/compose.js";
import { allSyscalls, syscallNumber } from "../syscalls/index.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { writePolicyText } from "../policy/write.js";
import { assertRoundTrip } from "../../test/support/policy-round-trip.js";
import {
  groupLearned, learnedPolicyDraft, learningPolicy, mergeLearned, newCalls, outputKey, parseLearnedPolicy, recordEvent, renderLearnedPolicy, serverEndpoint,
  type Learned, type RenderInput,
} from "./learn.js";
import { parsePostmasterPidFile } from "../host/server-files.js";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");
const STARTER_TEXT = readFileSync(resolve(ROOT, "profiles/postgresql-15-x86_64.conf"), "utf8");
const starter = parsePolicyText(STARTER_TEXT, "starter.conf");
/** The integration test's base: the starter profile without execve and listen. */
const STARTER_MINUS = STARTER_TEXT.replace(/\bexecve, /, "").replace(/\blisten, /, "");
const starterMinus = parsePolicyText(STARTER_MINUS, "base.conf");

/** A base with overlays, a role, argument conditions, errnos and groups. */
const CUSTOM = `
syscall_error_errno = 'EPERM'
global_syscall_default = 'error'
global_syscall_allow = 'read, write, close, socket, openat, exit_group, mmap, futex, @signal'
global_syscall_error = 'socket(arg0 == 16), clone3:ENOSYS'
global_syscall_kill = '@mount, ptrace'
global_syscall_log = 'uname'
session_syscall_error = '*, openat'
session_syscall_allow.alice = '*, openat'
checkpointer_syscall_default = 'kill'
database_syscall_error.payments = '*, mmap, execve'
`;
const custom = parsePolicyText(CUSTOM, "custom.conf");

const ARCH = "x86_64" as const;
const ARGS: bigint[][] = [[0n], [1n], [16n], [0xffffffffn]];
function data(nr: number, a0: bigint): SeccompData {
  return { nr, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [a0, 0n, 0n, 0n, 0n, 0n] };
}
const nr = (name: string) => syscallNumber(ARCH, name)!;
const ALL_NRS = [...allSyscalls(ARCH).map((s) => s.nr), 460, 1000];

function ev(context: string, syscall: string, extra: Partial<ViolationEvent> = {}): ViolationEvent {
  return { time: "2026-01-01T00:00:00.000Z", pid: 100, process: `postgres: ${context}`, context, syscall, nr: syscallNumber(ARCH, syscall) ?? -1, args: [], action: "log", ...extra };
}

/**
 * What a policy does with a call in a context: the decision trees the compiler uses, cached per
 * (policy, context) so that the property loops stay fast. Cross-checked against the reference
 * evaluator below.
 */
const treeCache = new WeakMap<Policy, Map<string, ContextDecisions>>();
function decide(p: Policy, ctx: ContextSpec, n: number, a0 = 0n): Action {
  let m = treeCache.get(p);
  if (!m) treeCache.set(p, (m = new Map()));
  const k = contextKey(ctx);
  let cd = m.get(k);
  if (!cd) m.set(k, (cd = contextDecisions(p, ARCH, ctx)));
  let d: Decision = decisionFor(cd, n);
  while (d.kind === "branch") d = d.conds.every((c) => conditionHolds(c, [a0, 0n, 0n, 0n, 0n, 0n])) ? d.then : d.else;
  return d.action;
}

/**
 * The policy without its hardening presets: the learning invariants below are about the lists
 * learning writes; presets are a layer of their own on top (checked separately).
 */
const listsOnlyCache = new WeakMap<Policy, Policy>();
function listsOnly(p: Policy): Policy {
  let r = listsOnlyCache.get(p);
  if (!r) listsOnlyCache.set(p, (r = withoutPresets(p)));
  return r;
}
/** Whether the policy's presets alone deny the call. */
const presetsOnlyCache = new WeakMap<Policy, Policy>();
function presetDenies(p: Policy, ctx: ContextSpec, n: number, a0: bigint): boolean {
  if (!p.hardening) return false;
  let q = presetsOnlyCache.get(p);
  if (!q) presetsOnlyCache.set(p, (q = { ...parsePolicyText("global_syscall_default = 'allow'\n"), hardening: p.hardening }));
  return decide(q, ctx, n, a0).kind !== "allow";
}

function fmt(a: Action): string {
  return a.kind === "error" ? `error:${a.errno}` : a.kind;
}

// ---------------------------------------------------------------------------------------------
// The learning policy

for (const [label, base] of [["starter", starter], ["custom", custom]] as const) {
  test(`learning policy (${label}): allow exactly where the base allows, log everywhere else, in every context`, () => {
    const learning = learningPolicy(base);
    assert.equal(learning.unknownAction, "default");
    for (const ctx of policyContexts(base)) {
      for (const n of ALL_NRS) {
        for (const a of ARGS) {
          const b = decide(base, ctx, n, a[0]!);
          const l = decide(learning, ctx, n, a[0]!);
          // The base's presets stay in force while learning.
          const want = presetDenies(base, ctx, n, a[0]!) ? "error" : b.kind === "allow" ? "allow" : "log";
          assert.equal(l.kind, want, `${JSON.stringify(ctx)} nr ${n} arg0 ${a[0]}: base ${fmt(b)}, learning ${fmt(l)}`);
        }
      }
    }
  });
}

test("learning policy without a base logs everything, unknown numbers too", () => {
  const learning = learningPolicy(undefined);
  for (const ctx of policyContexts(learning)) {
    for (const n of ALL_NRS) assert.equal(decide(learning, ctx, n).kind, "log");
  }
});

test("learning policy: what the base allows is decided in the kernel; the rest goes to the supervisor", () => {
  const progs = compose(learningPolicy(starterMinus), ARCH);
  const run = compileFilter(progs.installed);
  const ret = (name: string) => (run(data(nr(name), 0n)).ret & SECCOMP_RET_ACTION_FULL) >>> 0;
  for (const name of ["read", "write", "futex", "epoll_wait", "openat", "clone"]) assert.equal(ret(name), SECCOMP_RET_ALLOW, name);
  for (const name of ["execve", "listen", "ptrace", "mount", "setuid"]) assert.equal(ret(name), SECCOMP_RET_USER_NOTIF, name);
  assert.deepEqual(progs.perProcess, [], "every context decides alike: nothing per process");
  // Unknown numbers are reported too.
  assert.equal((run(data(1000, 0n)).ret & SECCOMP_RET_ACTION_FULL) >>> 0, SECCOMP_RET_USER_NOTIF);
});

// ---------------------------------------------------------------------------------------------
// Recording and merging

test("recordEvent counts per context key and keeps the first sighting", () => {
  const l: Learned = new Map();
  assert.equal(recordEvent(l, ev("session", "execve", { role: "alice", database: "db", pid: 7, process: "postgres: alice db [local] COPY" })), true);
  assert.equal(recordEvent(l, ev("session", "execve", { role: "alice", database: "db", pid: 8, time: "2026-01-01T00:00:01.000Z" })), false);
  assert.equal(recordEvent(l, ev("session", "execve", { role: "bob", database: "db" })), true);
  assert.equal(recordEvent(l, ev("postmaster", "listen", { process: "/usr/lib/postgresql/15/bin/postgres\n-D x" })), true);
  const c = l.get("session/alice/db")!.get("execve")!;
  assert.equal(c.count, 2);
  assert.deepEqual(c.first, { time: "2026-01-01T00:00:00.000Z", pid: 7, process: "postgres: alice db [local] COPY", context: "session/alice/db" });
  assert.equal(l.get("postmaster")!.get("listen")!.first.process, "/usr/lib/postgresql/15/bin/postgres -D x", "control characters are flattened");
  assert.deepEqual([...groupLearned(l, false).keys()].sort(), ["postmaster", "session"]);
  assert.equal(groupLearned(l, false).get("session")!.get("execve")!.count, 3);
  assert.deepEqual([...groupLearned(l, true).keys()].sort(), ["postmaster", "session/alice", "session/bob"]);
});

test("outputKey: roles only with --per-role and only when the role can be a setting suffix", () => {
  assert.equal(outputKey("session/alice/db", false), "session");
  assert.equal(outputKey("session/alice/db", true), "session/alice");
  assert.equal(outputKey("session/Alice/db", true), "session");
  assert.equal(outputKey("session/my-role/db", true), "session");
  assert.equal(outputKey("parallel_worker/alice/db", true), "parallel_worker");
  assert.equal(outputKey("checkpointer", true), "checkpointer");
});

test("mergeLearned adds counts and keeps the earlier first sighting; newCalls finds what is new", () => {
  const a: Learned = new Map();
  recordEvent(a, ev("session", "execve", { role: "alice", database: "db", time: "2026-01-02T00:00:00.000Z", pid: 2 }));
  const b: Learned = new Map();
  recordEvent(b, ev("session", "execve", { role: "alice", database: "db", time: "2026-01-01T00:00:00.000Z", pid: 1 }));
  recordEvent(b, ev("postmaster", "listen"));
  const m = mergeLearned(a, b);
  assert.equal(m.get("session/alice/db")!.get("execve")!.count, 2);
  assert.equal(m.get("session/alice/db")!.get("execve")!.first.pid, 1);
  assert.deepEqual(newCalls(a, b, false).map((n) => `${n.syscall}@${n.context}`), ["listen@postmaster"]);
  assert.deepEqual(newCalls(m, b, false), []);
  // A previous round written without roles covers every role's sessions.
  const coarse: Learned = new Map([["session", new Map([["execve", { count: 1, first: { time: "t", pid: 1, process: "p", context: "session/x/y" } }]])]]);
  assert.deepEqual(newCalls(coarse, b, true).map((n) => `${n.syscall}@${n.context}`), ["listen@postmaster"]);
});

test("serverEndpoint reads port and socket directory from postmaster.pid (lines 4 and 5)", () => {
  assert.deepEqual(serverEndpoint(parsePostmasterPidFile("1234\n/data\n1700000000\n5433\n/tmp/sock\n*\n  123  456\nready   \n")), { host: "/tmp/sock", port: "5433" });
  assert.deepEqual(serverEndpoint(parsePostmasterPidFile("1234\n/data\n1700000000\n5433\n\n10.0.0.1\n")), { host: "10.0.0.1", port: "5433" });
  assert.deepEqual(serverEndpoint(parsePostmasterPidFile("1234\n/data\n1700000000\n5433\n\n*\n")), { host: "localhost", port: "5433" });
  assert.equal(serverEndpoint(parsePostmasterPidFile("1234\n/data\n")), undefined);
});

// ---------------------------------------------------------------------------------------------
// The output

/** A learned set touching every rule: sessions of two roles, the postmaster, a backend type, parallel workers, unclassified children, an unknown number. */
function sampleLearned(): Learned {
  const l: Learned = new Map();
  const t = (s: number) => `2026-01-01T00:00:${String(s).padStart(2, "0")}.000Z`;
  recordEvent(l, ev("session", "execve", { role: "alice", database: "postgres", time: t(1), pid: 11, process: "postgres: alice postgres [local] COPY" }));
  recordEvent(l, ev("session", "execve", { role: "alice", database: "postgres", time: t(2), pid: 12 }));
  recordEvent(l, ev("session", "socket", { role: "alice", database: "postgres", time: t(3) }));
  recordEvent(l, ev("session", "uname", { role: "bob", database: "postgres", time: t(3) }));
  recordEvent(l, ev("session", "#460", { role: "alice", database: "postgres", nr: 460, time: t(4) }));
  recordEvent(l, ev("postmaster", "listen", { time: t(0), pid: 10, process: "/usr/lib/postgresql/15/bin/postgres -D /data" }));
  recordEvent(l, ev("checkpointer", "ptrace", { time: t(5) }));
  recordEvent(l, ev("checkpointer", "clone3", { time: t(5) }));
  recordEvent(l, ev("parallel_worker", "sched_setaffinity", { role: "alice", database: "postgres", time: t(6) }));
  recordEvent(l, ev("unclassified", "membarrier", { time: t(7) }));
  return l;
}

function render(base: Policy | undefined, learned: Learned, extra: Partial<RenderInput> = {}): { text: string; out: Policy } {
  const text = renderLearnedPolicy({
    learned, base, baseLabel: base ? "/etc/base.conf" : "none", arch: ARCH, server: "postgres (PostgreSQL) 15.18", workload: "psql -c 'copy (select 1) to program ''true'''",
    rounds: 1, roundStart: "2026-01-01T00:00:00.000Z", roundEnd: "2026-01-01T00:01:00.000Z", ...extra,
  });
  return { text, out: parsePolicyText(text, "learned.conf") };
}

/** The context a learned key's calls were made in. */
function specOf(key: string): ContextSpec {
  const [context, role, database] = key.split("/");
  return { context: context as ContextSpec["context"], ...(role ? { role } : {}), ...(database ? { database } : {}) };
}

function checkOutput(base: Policy | undefined, learned: Learned, perRole: boolean, allContexts = false): void {
  const { out: rendered } = render(base, learned, { perRole, allContexts });
  // The output carries the base's presets, or all of them when the base has none.
  assert.deepEqual(rendered.hardening?.presets, base?.hardening?.presets ?? ["namespaces", "address_families", "personality", "suid_sgid", "tiocsti"]);
  const out = listsOnly(rendered);
  if (base) base = listsOnly(base);
  const act = decide;
  // The trees agree with the reference evaluator (on a sample: it is slow).
  for (const ctx of [{ context: "postmaster" }, { context: "session", role: "alice" }, { context: "unclassified" }] as ContextSpec[]) {
    for (const name of ["execve", "listen", "socket", "ptrace", "clone3", "read", "uname", "mount"]) {
      for (const a of ARGS) assert.ok(sameAction(act(out, ctx, nr(name), a[0]!), evaluatePolicy(out, ARCH, ctx, data(nr(name), a[0]!))), `${name} ${a[0]}`);
    }
  }
  const baseAct = (ctx: ContextSpec, n: number, a0 = 0n): Action =>
    base ? act(base, ctx, n, a0) : allSyscalls(ARCH).some((s) => s.nr === n) ? { kind: "error", errno: 1 } : { kind: "error", errno: 38 };
  const learnedAnywhere = new Set<string>();
  for (const calls of learned.values()) for (const name of calls.keys()) learnedAnywhere.add(name);

  // 1. Every learned call is allowed in the context that made it (the learned server works).
  for (const [key, calls] of learned) {
    for (const name of calls.keys()) {
      const n = syscallNumber(ARCH, name);
      if (n === undefined) continue;
      for (const a of ARGS) assert.equal(act(out, specOf(key), n, a[0]!).kind, "allow", `${name} in ${key}`);
    }
  }
  // 2. What the base allows in a context stays allowed there (it was never reported).
  const contexts: ContextSpec[] = [
    { context: "postmaster" }, { context: "session", role: "alice", database: "postgres" }, { context: "session", role: "bob", database: "x" },
    { context: "session", role: "carol" }, { context: "session", role: "carol", database: "payments" }, { context: "checkpointer" }, { context: "walwriter" }, { context: "parallel_worker", role: "alice" }, { context: "unclassified" },
  ];
  for (const ctx of contexts) {
    for (const n of ALL_NRS) {
      for (const a of ARGS) {
        const b = baseAct(ctx, n, a[0]!);
        const o = act(out, ctx, n, a[0]!);
        if (b.kind === "allow") assert.equal(o.kind, "allow", `${JSON.stringify(ctx)} nr ${n} arg0 ${a[0]}: the base allows it`);
      }
    }
  }
  // 3. A learned syscall is allowed in every context (what a test did not show in one context is
  //    no evidence that it never needs it), except where the base's own lists for that context
  //    deny it by name and it was not used there; everything else is decided as the base decides.
  const ownDenied = (ctx: ContextSpec): Set<string> => {
    if (!base) return new Set();
    const filters = ctx.context === "session" ? [base.session, ...(ctx.role && base.roles.has(ctx.role) ? [base.roles.get(ctx.role)!] : [])] : [base.processes.get(ctx.context as never)].filter((f) => f !== undefined);
    return new Set(filters.flatMap((f) => f.entries.filter((e) => e.action.kind !== "allow" && !e.inheritedFrom && e.kind === "syscall").map((e) => e.name)));
  };
  for (const ctx of contexts.filter((c) => c.context !== "unclassified" && c.context !== "parallel_worker")) {
    const keys = [...learned.keys()].filter((k) => {
      const s = specOf(k);
      if (s.context === "unclassified") return ctx.context !== "postmaster";
      if (s.context === "parallel_worker") return ctx.context === "session";
      if (s.context !== ctx.context) return false;
      if (ctx.context !== "session" || !perRole) return true;
      return s.role === ctx.role;
    });
    const usedHere = new Set(keys.flatMap((k) => [...learned.get(k)!.keys()]));
    const named = ownDenied(ctx);
    for (const s of allSyscalls(ARCH)) {
      for (const a of ARGS) {
        const b = baseAct(ctx, s.nr, a[0]!);
        const o = act(out, ctx, s.nr, a[0]!);
        if (learnedAnywhere.has(s.name) && !(named.has(s.name) && !usedHere.has(s.name))) {
          assert.equal(o.kind, "allow", `${JSON.stringify(ctx)} ${s.name}: learned${usedHere.has(s.name) ? " here" : " elsewhere"}`);
        } else if (!learnedAnywhere.has(s.name) || named.has(s.name)) {
          assert.ok(sameAction(b, o), `${JSON.stringify(ctx)} ${s.name} arg0 ${a[0]}: base ${fmt(b)}, learned ${fmt(o)}`);
        }
      }
    }
  }
}

test("output (base: starter minus execve and listen): learned calls allowed where used, the base's decisions everywhere else", () => {
  checkOutput(starterMinus, sampleLearned(), false);
  checkOutput(starterMinus, sampleLearned(), true);
  checkOutput(starterMinus, sampleLearned(), true, true);
});

test("output (custom base: overlays, a role, conditions, errnos, groups)", () => {
  checkOutput(custom, sampleLearned(), false);
  checkOutput(custom, sampleLearned(), true);
  checkOutput(custom, sampleLearned(), false, true);
});

test("output without a base: default error (EPERM, as the bundled profiles), the global list is what was learned", () => {
  const { out, text } = render(undefined, sampleLearned());
  assert.match(text, /^global_syscall_default = 'error'$/m);
  assert.match(text, /^syscall_error_errno = 'EPERM'$/m);
  assert.deepEqual(out.global.entries.map((e) => e.name).sort(), ["clone3", "execve", "listen", "membarrier", "ptrace", "sched_setaffinity", "socket", "uname"]);
  checkOutput(undefined, sampleLearned(), false);
});

test("output: composed as the bundled profiles are, with evidence lines; no overlay from learning alone", () => {
  const { text, out } = render(starterMinus, sampleLearned());
  // Global: the base's allow list plus everything learned; the kill list keeps its groups.
  const globalAllow = new Set(out.global.entries.filter((e) => e.action.kind === "allow").map((e) => e.name));
  for (const e of starterMinus.global.entries.filter((x) => x.action.kind === "allow")) assert.ok(globalAllow.has(e.name), e.name);
  for (const n of ["execve", "listen", "ptrace", "membarrier", "sched_setaffinity", "uname"]) assert.ok(globalAllow.has(n), n);
  assert.match(text, /^global_syscall_kill = '@obsolete, @privileged, @mount, @module, @cpu-emulation, @raw-io, @reboot, @swap, @debug, @clock, @keyring'$/m);
  // The profiles' evidence lines: seen [context], floor [tag] (the base's calls: floor [base]).
  assert.match(text, /^#   execve: seen \[session\]$/m);
  assert.match(text, /^#   listen: seen \[postmaster\]$/m);
  assert.match(text, /^#   membarrier: seen \[unclassified\]$/m);
  assert.match(text, /^#   lseek: floor \[base\]$/m);
  assert.match(text, /^#   floor \[base\]: the learning base \(\/etc\/base.conf\) allows them in the kernel/m);
  assert.match(text, /^#   seen \[session\]: learned in client backends$/m);
  // No overlay: the starter base has none, and learning alone narrows no context.
  assert.deepEqual([...out.processes.keys()], []);
  assert.equal(decide(out, { context: "postmaster" }, nr("execve")).kind, "allow");
  assert.equal(decide(out, { context: "walwriter" }, nr("listen")).kind, "allow", "a context that never ran gets everything");
  // The record --merge reads.
  assert.match(text, /^# learned in session: 4 syscalls$/m);
  assert.match(text, /^#   execve: first seen 2026-01-01T00:00:01.000Z in session\/alice\/postgres \(pid 11: postgres: alice postgres \[local\] COPY\), 2 calls$/m);
  assert.match(text, /^#   listen: first seen 2026-01-01T00:00:00.000Z in postmaster \(pid 10: \/usr\/lib\/postgresql\/15\/bin\/postgres -D \/data\), 1 call$/m);
  assert.match(text, /#460: learned, but not in pg_seccomp's x86_64 table/);
  assert.match(text, /^# base: {6}\/etc\/base.conf$/m);
  assert.match(text, /^# workload: {2}psql -c/m);
});

test("--deny-per-context: denied in each context that ran and did not use it; never in one that did not run", () => {
  const ran = ["postmaster", "session", "checkpointer", "parallel_worker"];
  const { out, text } = render(starterMinus, sampleLearned(), { perRole: true, denyPerContext: ["execve", "listen"], ran });
  const is = (ctx: ContextSpec, name: string) => decide(out, ctx, nr(name)).kind;
  assert.equal(is({ context: "session", role: "alice" }, "execve"), "allow", "alice used it");
  assert.equal(is({ context: "session", role: "bob" }, "execve"), "error", "bob's sessions ran and did not");
  assert.equal(is({ context: "session", role: "carol" }, "execve"), "error", "the session overlay: no role used it");
  assert.equal(is({ context: "postmaster" }, "listen"), "allow");
  assert.equal(is({ context: "postmaster" }, "execve"), "error");
  assert.equal(is({ context: "checkpointer" }, "listen"), "error");
  assert.equal(is({ context: "walwriter" }, "execve"), "allow", "the walwriter never ran: nothing to narrow from");
  assert.equal(is({ context: "archiver" }, "execve"), "allow");
  assert.equal(is({ context: "checkpointer" }, "uname"), "allow", "only the named calls are narrowed");
  assert.match(text, /^checkpointer_syscall_error = '\*, execve, listen'$/m);
  assert.match(text, /^# --deny-per-context: execve, listen \(this context ran while learning and did not use them\)$/m);
});

test("static analysis: reachable and not seen is logged in every context, never denied", () => {
  const analysis = {
    arch: ARCH, binaries: [], missing: [], unresolved: [],
    syscalls: ["pwritev", "mkdir", "execve", "io_uring_setup", "mount"].map((name) => ({
      name, nr: nr(name), via: [{ binary: "libc.so.6", function: name, kind: "direct", reach: "call-path", path: [`postgres:main`, `libc.so.6:${name}`] }],
    })),
  } as unknown as RenderInput["analysis"];
  const { out, text } = render(undefined, sampleLearned(), { analysis, denyPerContext: ["execve"], ran: ["postmaster", "checkpointer"] });
  assert.match(text, /^global_syscall_log = '.*\bmkdir\b.*'$/m);
  assert.match(text, /^#   mkdir: static libc.so.6:mkdir <- postgres$/m);
  for (const ctx of [{ context: "checkpointer" }, { context: "startup" }, { context: "session", role: "x" }, { context: "archiver" }] as ContextSpec[]) {
    assert.equal(decide(out, ctx, nr("mkdir")).kind, "log", JSON.stringify(ctx));
  }
  assert.equal(decide(out, { context: "checkpointer" }, nr("execve")).kind, "error", "the DBA named it");
  assert.equal(decide(out, { context: "io_worker" }, nr("io_uring_setup")).kind, "error", "gated features stay denied");
  // A base whose overlay denies by default (custom: checkpointer_syscall_default = 'kill'): the
  // static-only call is still logged there, not killed; what the base names stays its decision.
  const withBase = render(custom, sampleLearned(), { analysis }).out;
  assert.equal(decide(withBase, { context: "checkpointer" }, nr("mkdir")).kind, "log");
  assert.equal(decide(withBase, { context: "session", role: "bob" }, nr("mkdir")).kind, "log");
  assert.equal(decide(withBase, { context: "session", role: "bob" }, nr("openat")).kind, "error", "the base's session_syscall_error names it");
});

test("a reachable member of a killed group is logged by name in a learned policy, as in the bundled profiles, never killed (issue 17)", () => {
  // capset is in @privileged, which the floor kills; Debian's glibc has a site for it.
  const analysis = {
    arch: ARCH, binaries: [], missing: [], unresolved: [],
    syscalls: ["capset", "mkdir"].map((name) => ({
      name, nr: nr(name), via: [{ binary: "libc.so.6", function: name, kind: "direct", reach: "no-direct-path", path: [] }],
    })),
  } as unknown as RenderInput["analysis"];
  const { out, text } = render(undefined, sampleLearned(), { analysis, floor: { allow: [], kill: ["@privileged"] }, ran: ["postmaster", "checkpointer"] });
  assert.match(text, /^global_syscall_kill = '@privileged'$/m);
  assert.match(text, /^global_syscall_log = '.*\bcapset\b.*'$/m);
  for (const ctx of [{ context: "postmaster" }, { context: "checkpointer" }, { context: "archiver" }, { context: "session", role: "x" }] as ContextSpec[]) {
    assert.equal(decide(out, ctx, nr("capset")).kind, "log", JSON.stringify(ctx));
  }
  assert.equal(decide(out, { context: "postmaster" }, nr("kexec_load")).kind, "kill", "unreachable members stay killed");
});

test("the output is a policy draft written by policy/write.ts: it reads back to the same settings and effective table", () => {
  const input = (base: Policy | undefined, extra: Partial<RenderInput> = {}): RenderInput => ({
    learned: sampleLearned(), base, baseLabel: base ? "/etc/base.conf" : "none", arch: ARCH, server: "postgres (PostgreSQL) 15.18",
    workload: "psql -c 'select 1'\nglobal_syscall_allow = 'kexec_load'", rounds: 1, roundStart: "2026-01-01T00:00:00.000Z", roundEnd: "2026-01-01T00:01:00.000Z", ...extra,
  });
  const cases: RenderInput[] = [
    input(starterMinus), input(starterMinus, { perRole: true }), input(custom, { perRole: true, allContexts: true }), input(custom), input(undefined),
    input(parsePolicyText(CUSTOM + "syscall_unknown_action = 'default'\n", "c.conf")),
  ];
  for (const i of cases) {
    const draft = learnedPolicyDraft(i);
    const text = renderLearnedPolicy(i);
    // One writer: the text is the draft written (the header's time aside).
    assert.equal(text.replace(/^# written: .*$/m, ""), writePolicyText(draft).replace(/^# written: .*$/m, ""));
    const back = assertRoundTrip(draft, ARCH, text);
    // The workload's line break stays inside the header's comment.
    assert.ok(!back.global.entries.some((e) => e.name === "kexec_load"));
    assert.ok(draft.settings.some((s) => s.name === "global_syscall_allow"));
  }
});

test("the base's database overlays are kept, minus restrictions of what sessions used", () => {
  const { out, text } = render(custom, sampleLearned());
  assert.ok(out.databases.has("payments"));
  const payments = out.databases.get("payments")!;
  const own = payments.entries.filter((e) => !e.inheritedFrom && e.action.kind === "error").map((e) => e.name);
  assert.deepEqual(own, ["mmap"]);
  assert.match(text, /^# removed from the base's error list for payments, because sessions used them: execve$/m);
  const ctx: ContextSpec = { context: "session", role: "alice", database: "payments" };
  assert.equal(decide(out, ctx, nr("execve")).kind, "allow", "alice's learned execve works in payments too");
  assert.equal(decide(out, ctx, nr("mmap")).kind, "error");
});

test("--all-contexts: every context gets an overlay; each allows everything learned and the base's allow list", () => {
  const { out } = render(starterMinus, sampleLearned(), { allContexts: true });
  assert.equal(out.processes.size, PROCESS_KINDS.length);
  const walwriter = { context: "walwriter" } as const;
  assert.equal(evaluatePolicy(out, ARCH, walwriter, data(nr("execve"), 0n)).kind, "allow", "learned elsewhere");
  assert.equal(evaluatePolicy(out, ARCH, walwriter, data(nr("membarrier"), 0n)).kind, "allow", "unclassified children's calls");
  assert.equal(evaluatePolicy(out, ARCH, walwriter, data(nr("read"), 0n)).kind, "allow");
  assert.equal(evaluatePolicy(out, ARCH, walwriter, data(nr("mount"), 0n)).kind, "error", "the starter profile denies a reachable mount by name (EPERM), as the kernel would an unprivileged caller");
});

test("the output's comments read back (--merge): same learned set at the output's granularity", () => {
  for (const perRole of [false, true]) {
    const learned = sampleLearned();
    const { text } = render(starterMinus, learned, { perRole, rounds: 3 });
    const back = parseLearnedPolicy(text);
    assert.equal(back.rounds, 3);
    assert.equal(back.since, "2026-01-01T00:00:00.000Z");
    assert.equal(back.base, "/etc/base.conf");
    assert.equal(back.perRole, perRole);
    const norm = (l: Learned) => JSON.stringify([...groupLearned(l, perRole)].map(([k, v]) => [k, [...v].sort(([a], [b]) => a.localeCompare(b))]).sort());
    assert.equal(norm(back.learned), norm(learned));
    // Merging the file with a round that saw nothing new: nothing new, same output lists.
    assert.deepEqual(newCalls(back.learned, learned, perRole), []);
    const again = render(starterMinus, mergeLearned(back.learned, new Map()), { perRole }).text;
    const settings = (t: string) => t.split("\n").filter((l) => !l.startsWith("#")).join("\n");
    assert.equal(settings(again), settings(text));
  }
});

test("merge: a second round's new syscalls are reported and added", () => {
  const first = sampleLearned();
  const back = parseLearnedPolicy(render(starterMinus, first).text).learned;
  const round2: Learned = new Map();
  recordEvent(round2, ev("session", "execve", { role: "carol", database: "x" }));
  recordEvent(round2, ev("walwriter", "setuid"));
  recordEvent(round2, ev("postmaster", "execve"));
  assert.deepEqual(newCalls(back, round2, false).map((n) => `${n.syscall}@${n.context}`), ["execve@postmaster", "setuid@walwriter"]);
  const merged = mergeLearned(back, round2);
  assert.equal(groupLearned(merged, false).get("session")!.get("execve")!.count, 3);
  const { out } = render(starterMinus, merged, { rounds: 2 });
  assert.equal(evaluatePolicy(out, ARCH, { context: "walwriter" }, data(nr("setuid"), 0n)).kind, "allow");
  assert.equal(evaluatePolicy(out, ARCH, { context: "postmaster" }, data(nr("execve"), 0n)).kind, "allow");
});
