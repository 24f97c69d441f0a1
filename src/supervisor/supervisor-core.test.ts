import { test } from "node:test";
import assert from "node:assert/strict";
import { compileFilter } from "../bpf/emulator.js";
import { AUDIT_ARCH_X86_64 } from "../seccomp/index.js";
import { contextKey, type ContextSpec } from "../policy/decision.js";
import { parsePolicyText } from "../policy/policy.js";
import { syscallNumber } from "../syscalls/index.js";
import { supervisorProgram } from "../compile/compose.js";
import { DEFAULT_LIMITS, SupervisorCore, type SupervisorIO } from "./supervisor-core.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { classifyChild } from "../classify/classify.js";

const arch = "x86_64" as const;
const EXECVE = syscallNumber(arch, "execve")!;
const GETPID = syscallNumber(arch, "getpid")!;
const policy = parsePolicyText(
  "global_syscall_default = allow\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\nglobal_syscall_log = 'getpid'\n",
  "core.conf",
);
const PM = 100;

function harness(limits = DEFAULT_LIMITS, pol = policy) {
  let now = 1_000_000;
  const procs = new Map<number, { ppid: number; start: string }>();
  const threads = new Map<number, number>();
  const answers: Array<{ id: bigint; a: { continue: true } | { errno: number } }> = [];
  const asked: Array<[number, string]> = [];
  const askedCode: boolean[] = [];
  const statements: number[] = [];
  const emitted: ViolationEvent[] = [];
  const notes: string[] = [];
  const killed: number[] = [];
  const shells = new Set<number>();
  const io: SupervisorIO = {
    now: () => now,
    threadGroup: (tid) => threads.get(tid) ?? (procs.has(tid) ? tid : undefined),
    stat: (pid) => procs.get(pid),
    status: () => "Threads:\t1\nSigBlk:\t0\nSigIgn:\t0\nSigCgt:\t0\n",
    title: (pid) => `title of ${pid}`,
    idValid: () => true,
    respond: (id, a) => answers.push({ id, a }),
    kill: (pid) => killed.push(pid),
    spawnsShell: (pid) => shells.has(pid),
    requestClassification: (pid, start, entersCode) => {
      asked.push([pid, start]);
      askedCode.push(entersCode);
    },
    requestStatement: (pid) => statements.push(pid),
    emit: (e) => emitted.push(e),
    note: (l) => notes.push(l),
  };
  const programs = new Map<string, ReturnType<typeof compileFilter>>();
  const decisionsFor = (ctx: ContextSpec) => {
    const k = contextKey(ctx);
    if (!programs.has(k)) programs.set(k, compileFilter(supervisorProgram(pol, arch, ctx)));
    return programs.get(k)!;
  };
  const core = new SupervisorCore(PM, decisionsFor, { pending: false, stagePid: PM, execveNr: EXECVE }, arch, io, limits);
  let id = 0n;
  const call = (pid: number, nr = EXECVE) => {
    const n = { id: ++id, pid, data: { nr, arch: AUDIT_ARCH_X86_64, instructionPointer: 0n, args: [0n, 0n, 0n, 0n, 0n, 0n] } };
    core.onNotification(n);
    return n.id;
  };
  const answerOf = (nid: bigint) => answers.find((x) => x.id === nid)?.a;
  return { core, io, procs, threads, answers, asked, askedCode, statements, emitted, notes, killed, shells, call, answerOf, advance: (ms: number) => { now += ms; core.tick(); } };
}

test("a provisional answer (a background worker before its row) decides calls that bring no code; one that does asks again and waits", () => {
  const h = harness();
  h.procs.set(PM, { ppid: 1, start: "1" });
  h.procs.set(300, { ppid: PM, start: "60" });
  const EPOLL_WAIT = 232;
  const wait = h.call(300, EPOLL_WAIT);
  const exec = h.call(300);
  assert.deepEqual([h.asked, h.askedCode], [[[300, "60"]], [false]], "asked once, for a call that brings no code");
  h.core.onClassified(300, "60", { ctx: { context: "background_worker" }, pin: false, provisional: true });
  assert.notEqual(h.answerOf(wait), undefined, "the call without code is answered");
  assert.equal(h.answerOf(exec), undefined, "the exec is still held");
  assert.deepEqual([h.asked, h.askedCode], [[[300, "60"], [300, "60"]], [false, true]], "asked again, as a call that brings code");
  h.core.onClassified(300, "60", { ctx: { context: "background_worker" }, pin: true });
  assert.notEqual(h.answerOf(exec), undefined);
  // The first call of a process that brings code asks as such.
  h.procs.set(301, { ppid: PM, start: "61" });
  h.call(301);
  assert.equal(h.askedCode.at(-1), true);
});

test("the postmaster is decided at once; an unclassified child of it is held until the classifier answers", () => {
  const h = harness();
  h.procs.set(PM, { ppid: 1, start: "1" });
  h.procs.set(200, { ppid: PM, start: "50" });
  assert.deepEqual(h.answerOf(h.call(PM)), { continue: true });
  const held = h.call(200);
  assert.equal(h.answerOf(held), undefined, "held");
  const again = h.call(200);
  assert.deepEqual(h.asked, [[200, "50"]], "asked once");
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "alice", database: "db" }, pin: true });
  assert.deepEqual(h.answerOf(held), { continue: true }, "alice may exec");
  assert.deepEqual(h.answerOf(again), { continue: true });
  assert.deepEqual(h.answerOf(h.call(200)), { continue: true }, "pinned: decided at once");
  assert.equal(h.asked.length, 1);
});

test("a program a session started has the session's context, whatever it is; reparented processes get the most restrictive", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.procs.set(300, { ppid: 200, start: "60" }); // sh -c from COPY TO PROGRAM
  h.procs.set(301, { ppid: 300, start: "61" });
  h.procs.set(400, { ppid: 1, start: "70" }); // reparented
  h.call(200);
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  h.advance(1000);
  const grandchild = h.call(301);
  h.advance(1000); // past the statement wait
  assert.deepEqual(h.answerOf(grandchild), { errno: 13 }, "bob's session may not exec, nor its children");
  const e = h.emitted.find((x) => x.pid === 301)!;
  assert.equal(e.decidedBy, 200);
  assert.equal(e.role, "bob");
  const orphan = h.call(400);
  assert.equal(h.emitted.find((x) => x.pid === 400)?.context, "unclassified");
  assert.ok(h.answerOf(orphan));
});

test("no answer in time: the most restrictive context decides, noted in the log", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  const held = h.call(200);
  h.advance(DEFAULT_LIMITS.classifyWaitMs + 1);
  assert.deepEqual(h.answerOf(held), { errno: 13 });
  const e = h.emitted.find((x) => x.pid === 200)!;
  assert.equal(e.context, "unclassified");
  assert.equal(e.note, "not classified in time");
});

test("a new process under a reused pid is classified afresh", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.call(200);
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "alice", database: "db" }, pin: true });
  h.procs.set(200, { ppid: PM, start: "99" });
  const n = h.call(200);
  assert.equal(h.answerOf(n), undefined);
  assert.deepEqual(h.asked.at(-1), [200, "99"]);
});

test("held calls are bounded: past the limit, calls are decided at once", () => {
  const h = harness({ ...DEFAULT_LIMITS, maxHeld: 3 });
  for (let p = 500; p < 510; p++) h.procs.set(p, { ppid: PM, start: String(p) });
  const ids = Array.from({ length: 10 }, (_, i) => h.call(500 + i));
  assert.equal(h.core.heldCount, 3);
  assert.equal(ids.filter((i) => h.answerOf(i)).length, 7);
});

test("a denied session call waits briefly for its statement; the log has it", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.call(200);
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  assert.deepEqual(h.statements, [200]);
  h.core.onStatement(200, "copy ... to program");
  assert.equal(h.emitted[0]?.query, "copy ... to program");
  assert.deepEqual(h.answers.at(-1)?.a, { errno: 13 });
});

test("a flood from one process is rate-limited in the log, and said once", () => {
  const h = harness();
  h.procs.set(PM, { ppid: 1, start: "1" });
  for (let i = 0; i < 500; i++) h.call(PM, GETPID); // logged calls
  assert.equal(h.answers.length, 500, "every call is answered");
  assert.equal(h.emitted.length, DEFAULT_LIMITS.eventsPerSecondPerPid);
  assert.equal(h.notes.length, 1);
  h.advance(1500);
  const summary = h.emitted.at(-1)!;
  assert.equal(summary.count, 500 - DEFAULT_LIMITS.eventsPerSecondPerPid, "the rest are summed into one record");
  assert.equal(summary.syscall, "getpid");
  assert.equal(summary.pid, PM);
});

test("a thread is its process: its calls are decided in its process's pinned context, never classified afresh", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.procs.set(201, { ppid: PM, start: "51" }); // a thread of 200: the kernel gives it 200's parent
  h.threads.set(201, 200);
  h.call(200);
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  const fromThread = h.call(201);
  h.advance(1000);
  assert.deepEqual(h.answerOf(fromThread), { errno: 13 }, "bob's session may not exec, from any of its threads");
  assert.deepEqual(h.asked, [[200, "50"]], "the thread was never classified by itself");
  assert.equal(h.emitted.at(-1)?.pid, 200);
});

test("one process's flood never decides another's call: held calls and statement lookups are bounded per process", () => {
  const h = harness({ ...DEFAULT_LIMITS, maxHeldPerProcess: 4 });
  h.procs.set(200, { ppid: PM, start: "50" }); // the flooding backend
  h.procs.set(300, { ppid: PM, start: "60" }); // alice's
  for (let i = 0; i < 100; i++) h.call(200);
  assert.equal(h.core.heldCount, 4, "the flood holds at most its own share");
  const alice = h.call(300);
  assert.equal(h.answerOf(alice), undefined, "alice's call waits for her classification, not decided at once");
  h.core.onClassified(300, "60", { ctx: { context: "session", role: "alice", database: "db" }, pin: true });
  assert.deepEqual(h.answerOf(alice), { continue: true });
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  for (let i = 0; i < 50; i++) h.call(200);
  assert.equal(h.statements.filter((p) => p === 200).length, DEFAULT_LIMITS.statementsPerSecondPerProcess, "bob's lookups are his share");
});

test("spending the first event of a kind and exhausting the buckets hides nothing: a later logged call is in a summary", () => {
  const h = harness();
  h.procs.set(PM, { ppid: 1, start: "1" });
  h.procs.set(300, { ppid: PM, start: "60" });
  h.core.onClassified(300, "60", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  for (let i = 0; i < 600; i++) h.call(PM, GETPID); // exhausts the global bucket too
  h.call(300, GETPID); // the first getpid of a session: its kind is new, written at once
  for (let i = 0; i < 30; i++) h.call(300, GETPID);
  const before = h.emitted.filter((e) => e.pid === 300).length;
  h.advance(1500);
  const summary = h.emitted.filter((e) => e.pid === 300 && e.count !== undefined);
  assert.equal(summary.length, 1);
  assert.equal(before + summary[0]!.count!, 31, "every call of process 300 is written or summed");
});

test("classification rules: names never decide, kernel facts must agree, missing facts are not pinned", () => {
  const row = (backendType: string, role = "r", database = "d") => ({ backendType, role, database });
  assert.deepEqual(classifyChild({ activity: row("client backend", "walsender"), clientConnection: true, title: "postgres: archiver" }),
    { ctx: { context: "session", role: "walsender", database: "d" }, pin: true });
  assert.deepEqual(classifyChild({ activity: row("archiver"), clientConnection: true, title: "postgres: archiver" }).ctx, { context: "unclassified" });
  assert.equal(classifyChild({ activity: row("archiver"), clientConnection: true, title: "" }).pin, true, "inconsistent facts pin the most restrictive");
  assert.deepEqual(classifyChild({ activity: row("client backend"), clientConnection: false, title: "" }).ctx, { context: "unclassified" });
  assert.deepEqual(classifyChild({ activity: row("checkpointer"), clientConnection: false, title: "postgres: alice db [local] idle" }).ctx, { context: "checkpointer" });
  assert.deepEqual(classifyChild({ activity: row("parallel worker", "bob", "db"), clientConnection: false, title: "" }).ctx, { context: "parallel_worker", role: "bob", database: "db" });
  assert.deepEqual(classifyChild({ activity: row("io worker"), clientConnection: false, title: "" }).ctx, { context: "io_worker" });
  assert.deepEqual(classifyChild({ activity: row("walsummarizer"), clientConnection: false, title: "" }).ctx, { context: "walsummarizer" });
  assert.deepEqual(classifyChild({ activity: row("slotsync worker"), clientConnection: false, title: "" }).ctx, { context: "slotsync_worker" });
  // PostgreSQL 14's statistics collector has no row: its title decides.
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "postgres: stats collector " }).ctx, { context: "stats_collector" });
  assert.deepEqual(classifyChild({ activity: row("something new"), clientConnection: false, title: "" }).ctx, { context: "unclassified" });
  // A background worker without a row yet (a dynamic one maps its library first): pinned by its
  // own MyBackendType before that library's code can change any fact; other rowless processes not.
  assert.deepEqual(classifyChild({ entersCode: true, activity: "none", clientConnection: false, title: "postgres: archiver", forkedAfterReady: true, ownBackendType: "background worker" }), { ctx: { context: "background_worker" }, pin: true });
  // A call that brings no code (only the server's runs in it): that context for the call alone.
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "postgres: archiver", forkedAfterReady: true, ownBackendType: "background worker" }), { ctx: { context: "background_worker" }, pin: false, provisional: true });
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "", forkedAfterReady: true, ownBackendType: "unreadable" }).pin, false);
  // Any process kind of its own, by its own type: the title is not read.
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "postgres: alice db [local] idle", forkedAfterReady: true, ownBackendType: "archiver" }), { ctx: { context: "archiver" }, pin: true });
  assert.deepEqual(classifyChild({ activity: undefined, clientConnection: false, title: "postgres: archiver", ownBackendType: "startup" }), { ctx: { context: "startup" }, pin: true });
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "", ownBackendType: "stats collector" }), { ctx: { context: "stats_collector" }, pin: true });
  // Before the server is said to be ready (postmaster.pid "starting", which a superuser can
  // write) a background worker is still told by its own type, never by its bgw_name title.
  assert.deepEqual(classifyChild({ entersCode: true, activity: undefined, clientConnection: false, title: "postgres: archiver", forkedAfterReady: false, ownBackendType: "background worker" }), { ctx: { context: "background_worker" }, pin: true });
  // Own types that are no kind: "invalid" (not set yet), a client's without a connection: not pinned.
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "", forkedAfterReady: true, ownBackendType: "invalid" }).pin, false);
  assert.deepEqual(classifyChild({ activity: "none", clientConnection: false, title: "postgres: checkpointer", forkedAfterReady: true, ownBackendType: "client backend" }).pin, false);
  // No answer from the monitor (a locked catalog) once the server was ready: the same.
  assert.deepEqual(classifyChild({ entersCode: true, activity: undefined, clientConnection: false, title: "postgres: archiver", forkedAfterReady: true, ownBackendType: "background worker" }), { ctx: { context: "background_worker" }, pin: true });
  // Before the server answers: a client connection is never classified by title.
  assert.deepEqual(classifyChild({ activity: undefined, clientConnection: true, title: "postgres: checkpointer" }), { ctx: { context: "unclassified" }, pin: false, note: "client connection not authenticated yet" });
  assert.deepEqual(classifyChild({ activity: undefined, clientConnection: false, title: "postgres: startup recovering 0001" }), { ctx: { context: "startup" }, pin: true });
  assert.equal(classifyChild({ activity: "none", clientConnection: false, title: "postgres: alice db [local] idle" }).ctx.context, "unclassified");
  assert.equal(classifyChild({ activity: "none", clientConnection: false, title: "postgres: logger " }).ctx.context, "logger");
});

test("a denied execve of popen's or system's shell kills that child; other denied execs get the errno", () => {
  const h = harness({ ...DEFAULT_LIMITS, statementsPerSecond: 0 });
  h.procs.set(200, { ppid: PM, start: "50" }); // bob's backend
  h.procs.set(300, { ppid: 200, start: "60" }); // popen's child, about to exec /bin/sh
  h.procs.set(301, { ppid: 200, start: "61" }); // a PL's child exec'ing something else
  h.procs.set(400, { ppid: PM, start: "70" }); // alice's backend
  h.procs.set(401, { ppid: 400, start: "71" });
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob" }, pin: true });
  h.core.onClassified(400, "70", { ctx: { context: "session", role: "alice" }, pin: true });
  h.shells.add(300).add(200).add(401);
  const spawned = h.call(300);
  assert.deepEqual(h.killed, [300], "popen's child is killed");
  assert.equal(h.emitted.at(-1)?.action, "error");
  assert.equal(h.emitted.at(-1)?.signal, "SIGSYS");
  assert.equal(h.emitted.at(-1)?.errno, 13);
  assert.ok(h.answerOf(spawned), "the call is answered too");
  assert.deepEqual(h.answerOf(h.call(301)), { errno: 13 }, "not a shell spawn: the errno");
  assert.deepEqual(h.answerOf(h.call(200)), { errno: 13 }, "the backend itself is never killed for it");
  assert.deepEqual(h.answerOf(h.call(401)), { continue: true }, "allowed: runs, whatever it is");
  assert.deepEqual(h.killed, [300]);
});

test("a flood of short-lived programs of one session is rate-limited by the session: each fork does not get a bucket of its own", () => {
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.call(200);
  h.core.onClassified(200, "50", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  h.advance(1000);
  const before = h.emitted.length;
  // COPY ... TO PROGRAM in a loop: every denied exec comes from a new child of the backend.
  for (let i = 0; i < 300; i++) {
    h.procs.set(1000 + i, { ppid: 200, start: String(1000 + i) });
    h.call(1000 + i);
  }
  h.advance(DEFAULT_LIMITS.statementWaitMs + 1);
  assert.equal(h.answers.length, 301, "every call is answered");
  const logged = h.emitted.slice(before);
  assert.ok(logged.length <= DEFAULT_LIMITS.eventsPerSecondPerPid, `${logged.length} events logged in one second from one session`);
  assert.ok(logged.every((e) => e.decidedBy === 200));
  assert.match(h.notes.join("\n"), /rate limit reached \(pid 200\)/);
  // Another session is not held back by the first one's flood.
  h.procs.set(201, { ppid: PM, start: "51" });
  h.call(201);
  h.core.onClassified(201, "51", { ctx: { context: "session", role: "bob", database: "db" }, pin: true });
  h.call(201);
  h.advance(DEFAULT_LIMITS.statementWaitMs + 1);
  assert.equal(h.emitted.filter((e) => e.pid === 201).length, 2, "another session of the same role still logs in the same second");
});

test("the exec gate: a mapping of the server's own code runs without classifying its caller; anything else waits for classification", async () => {
  const { compose, execGateOnly } = await import("../compile/compose.js");
  const MMAP = syscallNumber(arch, "mmap")!;
  const gateOnly = execGateOnly(compose(policy, arch).routed);
  assert.ok(gateOnly.includes(MMAP), "mmap is routed for the exec gate alone");
  for (const [what, isServerCode, heldExpected] of [
    ["plpgsql.so's text", true, false],
    ["any other file (a LOADed library, anonymous memory)", false, true],
  ] as const) {
    const h = harness();
    h.procs.set(200, { ppid: PM, start: "50" });
    h.core.gateOnly = new Set(gateOnly);
    const seen: Array<[number, bigint]> = [];
    h.io.serverCodeMapping = (pid, d) => {
      seen.push([pid, d.args[2]!]);
      return isServerCode;
    };
    const held = h.call(200, MMAP);
    assert.deepEqual(seen, [[200, 0n]], what);
    assert.equal(h.answerOf(held) === undefined, heldExpected, what);
    assert.equal(h.asked.length, heldExpected ? 1 : 0, `${what}: classification asked`);
    assert.equal(h.core.serverCodeMappings, heldExpected ? 0 : 1);
    assert.deepEqual(h.emitted, [], "an allowed mapping is not a violation");
  }
  // A call routed for the gate alone is the only kind answered so: execve of the same process
  // still waits for its classification, whatever serverCodeMapping would say.
  const h = harness();
  h.procs.set(200, { ppid: PM, start: "50" });
  h.core.gateOnly = new Set(gateOnly);
  h.io.serverCodeMapping = () => true;
  assert.equal(h.answerOf(h.call(200, EXECVE)), undefined);
  assert.deepEqual(h.asked, [[200, "50"]]);
});

test("the exec gate's exception needs every context to allow the call quietly: a policy that logs mmap classifies first", async () => {
  const { compose, execGateOnly } = await import("../compile/compose.js");
  const MMAP = syscallNumber(arch, "mmap")!;
  const logging = parsePolicyText(
    "global_syscall_default = allow\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\nglobal_syscall_log = 'mmap'\n",
    "logging.conf",
  );
  assert.ok(!execGateOnly(compose(logging, arch).routed).includes(MMAP), "mmap is routed because the policy logs it too");
  // And were it routed for the gate alone, the supervisor's answer (log) is not a quiet allow: held.
  const h = harness(DEFAULT_LIMITS, logging);
  h.procs.set(200, { ppid: PM, start: "50" });
  h.core.gateOnly = new Set([MMAP]);
  let askedServerCode = false;
  h.io.serverCodeMapping = () => (askedServerCode = true);
  assert.equal(h.answerOf(h.call(200, MMAP)), undefined);
  assert.deepEqual(h.asked, [[200, "50"]]);
  assert.equal(askedServerCode, false, "decided from the policy before any /proc read");
});
