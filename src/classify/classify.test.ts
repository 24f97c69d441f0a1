import { test } from "node:test";
import assert from "node:assert/strict";
import { Classifier, classifyChild, contextOfTitle } from "./classify.js";
import { parseProcStat } from "../host/proc.js";

test("process titles of every PostgreSQL 15 backend type", () => {
  const cases: Array<[string, object | undefined]> = [
    ["postgres: checkpointer ", { context: "checkpointer" }],
    ["postgres: main: background writer ", { context: "background_writer" }],
    ["postgres: walwriter ", { context: "walwriter" }],
    ["postgres: autovacuum launcher ", { context: "autovacuum_launcher" }],
    ["postgres: autovacuum worker sales", { context: "autovacuum_worker" }],
    ["postgres: logical replication launcher ", { context: "logical_replication_launcher" }],
    ["postgres: logical replication worker for subscription 16398 ", { context: "logical_replication_worker" }],
    ["postgres: archiver last was 000000010000000000000002", { context: "archiver" }],
    ["postgres: startup recovering 000000010000000000000003", { context: "startup" }],
    ["postgres: walreceiver streaming 0/3000148", { context: "walreceiver" }],
    ["postgres: walsender replicator [local] streaming 0/3000148", { context: "walsender" }],
    ["postgres: parallel worker for PID 4242 ", { context: "parallel_worker", leaderPid: 4242 }],
    ["postgres: alice sales [local] idle", { context: "session", role: "alice", database: "sales" }],
    ["postgres: main: alice postgres [local] SELECT", { context: "session", role: "alice", database: "postgres" }],
    ["postgres: bob db 10.0.0.5(51234) idle in transaction", { context: "session", role: "bob", database: "db" }],
    ["postgres: pg_cron launcher ", { context: "background_worker" }],
    ["postgres: logger ", { context: "logger" }],
    // A role may be called like a backend type: its sessions are still sessions.
    ["postgres: archiver sales [local] idle", { context: "session", role: "archiver", database: "sales" }],
    ["postgres: checkpointer postgres 127.0.0.1(5555) SELECT", { context: "session", role: "checkpointer", database: "postgres" }],
    ["/usr/lib/postgresql/15/bin/postgres -D /var/lib/postgresql/15/main", undefined],
    ["sh -c cat > /dev/null", undefined],
  ];
  for (const [title, want] of cases) assert.deepEqual(contextOfTitle(title), want, title);
});

test("/proc/PID/stat fields, with a comm that contains spaces and parentheses", () => {
  const stat = "4242 (postgres: a (b)) S 807 807 807 0 -1 4194560 100 0 0 0 0 0 0 0 20 0 1 0 123456 1000 10 18446744073709551615";
  const st = parseProcStat(stat);
  assert.deepEqual([st?.ppid, st?.start], [807, "123456"]);
});

test("classification: postmaster, children, exec'd grandchildren inherit, pins survive title changes, pid reuse is noticed", () => {
  const procs = new Map<number, { cmdline: string; stat: string }>();
  const set = (pid: number, ppid: number, start: number, title: string) =>
    procs.set(pid, { cmdline: title.replace(/ /g, "\0") + "\0", stat: `${pid} (x) S ${ppid} 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 0 ${start} 0` });
  const c = new Classifier(100, { cmdline: (p) => procs.get(p)?.cmdline, stat: (p) => procs.get(p)?.stat });
  set(100, 1, 1, "/usr/lib/postgresql/15/bin/postgres -D /data");
  assert.deepEqual(c.classify(100), { context: "postmaster" });
  set(200, 100, 5, "/usr/lib/postgresql/15/bin/postgres -D /data");
  assert.deepEqual(c.classify(200), { context: "unclassified" }, "a fresh fork before its title is set");
  set(200, 100, 5, "postgres: alice sales [local] idle");
  assert.deepEqual(c.classify(200), { context: "session", role: "alice", database: "sales" });
  set(200, 100, 5, "postgres: checkpointer ");
  assert.deepEqual(c.classify(200), { context: "session", role: "alice", database: "sales" }, "pinned");
  set(300, 200, 9, "sh -c cat");
  assert.deepEqual(c.classify(300), { context: "session", role: "alice", database: "sales" }, "COPY TO PROGRAM's shell");
  set(301, 200, 10, "postgres: checkpointer ");
  assert.deepEqual(c.classifyWithSource(301), { ctx: { context: "session", role: "alice", database: "sales" }, source: 200 }, "a backend's fork cannot choose its context by title");
  set(400, 100, 12, "postgres: parallel worker for PID 200 ");
  assert.deepEqual(c.classify(400), { context: "parallel_worker", role: "alice", database: "sales" });
  set(200, 100, 77, "postgres: bob sales [local] idle");
  assert.deepEqual(c.classify(200), { context: "session", role: "bob", database: "sales" }, "a new process with a reused pid");
  assert.deepEqual(c.classify(999), { context: "unclassified" });
});

test("a client process's row must name who it logged in as (its own memory): a forged row pins the most restrictive context", () => {
  const row = { backendType: "client backend", role: "alice", database: "db" };
  const base = { activity: row, clientConnection: true, title: "", forkedAfterReady: true };
  assert.deepEqual(classifyChild({ ...base, startupNames: { user: "alice", database: "db", walsender: false } }), { ctx: { context: "session", role: "alice", database: "db" }, pin: true });
  const forgedRole = classifyChild({ ...base, startupNames: { user: "bob", database: "db", walsender: false } });
  assert.deepEqual([forgedRole.ctx, forgedRole.pin], [{ context: "unclassified" }, true]);
  assert.match(forgedRole.note!, /^inconsistent: the server's row names role "alice", the process logged in as "bob"/);
  const forgedDb = classifyChild({ ...base, startupNames: { user: "alice", database: "other", walsender: false } });
  assert.deepEqual([forgedDb.ctx, forgedDb.pin], [{ context: "unclassified" }, true]);
  assert.match(forgedDb.note!, /database "db", the process connected to "other"/);
  const unreadable = classifyChild({ ...base, startupNames: "unreadable" });
  assert.deepEqual([unreadable.ctx, unreadable.pin], [{ context: "unclassified" }, false], "asked again on the next call");
  // Without a reader (a major whose layout is unknown) the row alone decides, as before.
  assert.deepEqual(classifyChild(base), { ctx: { context: "session", role: "alice", database: "db" }, pin: true });
  // A physical walsender: no database in the row, "" in its startup packet.
  const ws = { ...base, activity: { backendType: "walsender", role: "rep" } };
  assert.deepEqual(classifyChild({ ...ws, startupNames: { user: "rep", database: "", walsender: true } }), { ctx: { context: "walsender" }, pin: true });
  assert.equal(classifyChild({ ...ws, startupNames: { user: "postgres", database: "", walsender: true } }).pin, true);
  assert.equal(classifyChild({ ...ws, startupNames: { user: "postgres", database: "", walsender: true } }).ctx.context, "unclassified");
  // The row's type must agree with whether the process asked for replication (its own memory).
  const forgedType = classifyChild({ ...base, activity: { backendType: "walsender", role: "alice", database: "db" }, startupNames: { user: "alice", database: "db", walsender: false } });
  assert.deepEqual([forgedType.ctx, forgedType.pin], [{ context: "unclassified" }, true]);
  assert.match(forgedType.note!, /^inconsistent: the server's row says "walsender", the process did not ask for replication/);
  const forgedClient = classifyChild({ ...base, startupNames: { user: "alice", database: "db", walsender: true } });
  assert.deepEqual([forgedClient.ctx, forgedClient.pin], [{ context: "unclassified" }, true]);
  assert.match(forgedClient.note!, /row says "client backend", the process asked for replication/);
  assert.deepEqual(classifyChild({ ...base, activity: { backendType: "walsender", role: "alice", database: "db" }, startupNames: { user: "alice", database: "db", walsender: true } }).ctx, { context: "walsender", role: "alice", database: "db" });
});

test("a process without a client connection: the row's type must be the one it keeps itself (MyBackendType)", () => {
  const base = { clientConnection: false, title: "", forkedAfterReady: true };
  const archiverRow = { activity: { backendType: "archiver" }, ...base };
  assert.deepEqual(classifyChild({ ...archiverRow, ownBackendType: "archiver" }), { ctx: { context: "archiver" }, pin: true });
  const forged = classifyChild({ ...archiverRow, ownBackendType: "background worker" });
  assert.deepEqual([forged.ctx, forged.pin], [{ context: "unclassified" }, true]);
  assert.match(forged.note!, /inconsistent: the server's row says "archiver", the process is a background worker/);
  // Every background worker's row shows its own type name; MyBackendType says "background worker".
  for (const t of ["logical replication launcher", "logical replication worker"]) {
    assert.equal(classifyChild({ activity: { backendType: t }, ...base, ownBackendType: "background worker" }).pin, true);
    assert.notEqual(classifyChild({ activity: { backendType: t }, ...base, ownBackendType: "background worker" }).ctx.context, "unclassified");
  }
  const pw = classifyChild({ activity: { backendType: "parallel worker", role: "alice", database: "db" }, ...base, ownBackendType: "background worker" });
  assert.deepEqual(pw.ctx, { context: "parallel_worker", role: "alice", database: "db" });
  // A checkpointer claiming to be a parallel worker, or unreadable: the most restrictive.
  assert.equal(classifyChild({ activity: { backendType: "parallel worker", role: "alice", database: "db" }, ...base, ownBackendType: "checkpointer" }).ctx.context, "unclassified");
  const unreadable = classifyChild({ ...archiverRow, ownBackendType: "unreadable" });
  assert.deepEqual([unreadable.ctx, unreadable.pin], [{ context: "unclassified" }, false]);
});
