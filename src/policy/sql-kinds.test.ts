// "Session" means every process that runs SQL: walsenders with a database, autovacuum workers,
// background workers and logical replication workers get the session's lists unless the policy
// gives them lists of their own, and then `check` names what that lets through.

import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePolicyText } from "./policy.js";
import { contextDecisions, decisionFor, type ContextSpec } from "./decision.js";
import { policyRisks, sqlKindsOpened } from "./risks.js";
import { syscallNumber } from "../syscalls/index.js";
import { classifyChild } from "../classify/classify.js";
import { clientsNeedServerRow } from "../compile/compose.js";

const p = (t: string) => parsePolicyText("global_syscall_default = allow\n" + t, "t.conf");
const action = (text: string, ctx: ContextSpec, name: string) => {
  const d = decisionFor(contextDecisions(p(text), "x86_64", ctx), syscallNumber("x86_64", name)!);
  assert.equal(d.kind, "leaf");
  return d.kind === "leaf" ? d.action.kind : "";
};

const SESSION_NO_EXEC = "session_syscall_error = '*, execve'\n";

test("every kind that runs SQL gets the session's lists; kinds that run none keep the global ones", () => {
  for (const ctx of [
    { context: "session" }, { context: "walsender", role: "alice", database: "db" }, { context: "autovacuum_worker" },
    { context: "background_worker" }, { context: "logical_replication_worker" }, { context: "parallel_worker", role: "alice", database: "db" },
  ] as ContextSpec[]) {
    assert.equal(action(SESSION_NO_EXEC, ctx, "execve"), "error", JSON.stringify(ctx));
  }
  for (const ctx of [{ context: "walsender" }, { context: "archiver" }, { context: "autovacuum_launcher" }, { context: "checkpointer" }] as ContextSpec[]) {
    assert.equal(action(SESSION_NO_EXEC, ctx, "execve"), "allow", JSON.stringify(ctx));
  }
  // A walsender with a database is a session of its role and database.
  const roles = SESSION_NO_EXEC + "session_syscall_allow.etl = '*, execve'\ndatabase_syscall_error.payments = '*, socket'\n";
  assert.equal(action(roles, { context: "walsender", role: "etl", database: "x" }, "execve"), "allow");
  assert.equal(action(roles, { context: "walsender", role: "etl", database: "payments" }, "socket"), "error");
});

test("a kind's own settings replace the session's lists one by one; '*' there is the session's list", () => {
  // Tightening keeps the session's denials: '*' stands for the session's error list.
  const tight = SESSION_NO_EXEC + "autovacuum_worker_syscall_error = '*, ptrace'\n";
  assert.equal(action(tight, { context: "autovacuum_worker" }, "execve"), "error");
  assert.equal(action(tight, { context: "autovacuum_worker" }, "ptrace"), "error");
  assert.deepEqual(sqlKindsOpened(p(tight), ["x86_64"]), []);
  // Opening on purpose: named, and warned about with the SQL that reaches it.
  const open = SESSION_NO_EXEC + "background_worker_syscall_allow = 'execve'\nwalsender_syscall_allow = 'execve'\n";
  assert.equal(action(open, { context: "background_worker" }, "execve"), "allow");
  assert.equal(action(open, { context: "walsender", database: "db" }, "execve"), "allow");
  const risks = sqlKindsOpened(p(open), ["x86_64"]);
  assert.deepEqual(risks.map((r) => [r.contexts[0]!.split("/")[0], r.calls]), [["walsender", ["execve"]], ["background_worker", ["execve"]]]);
  assert.match(risks[1]!.why, /pg_cron/);
  assert.match(risks[1]!.why, /COPY \.\.\. TO PROGRAM/);
  assert.equal(risks[1]!.locs[0]!.line, 3);
  assert.ok(policyRisks(p(open), ["x86_64"]).some((r) => r.id === "sql_kind_opened"), "check prints them with the other risks");
  // A physical walsender keeps the global lists under its own settings.
  assert.equal(action(SESSION_NO_EXEC + "walsender_syscall_error = '*, ptrace'\n", { context: "walsender" }, "execve"), "allow");
  assert.equal(action(SESSION_NO_EXEC + "walsender_syscall_error = '*, ptrace'\n", { context: "walsender", database: "db" }, "execve"), "error");
});

test("the classifier gives a walsender with a database its role and database, and waits for the role", () => {
  const row = (database?: string, role?: string) => ({ backendType: "walsender", ...(role ? { role } : {}), ...(database ? { database } : {}) });
  assert.deepEqual(classifyChild({ activity: row("db", "alice"), clientConnection: true, title: "" }), { ctx: { context: "walsender", role: "alice", database: "db" }, pin: true });
  assert.deepEqual(classifyChild({ activity: row(undefined, "alice"), clientConnection: true, title: "" }), { ctx: { context: "walsender" }, pin: true });
  assert.deepEqual(classifyChild({ activity: row(), clientConnection: true, title: "" }).pin, false, "PostgreSQL 18's row while authenticating");
});

test("walsenders with a database count when deciding whether client processes need the server's row", () => {
  const q = (t: string) => clientsNeedServerRow(p(t), "x86_64");
  assert.equal(q(SESSION_NO_EXEC), true, "physical walsenders unlike sessions");
  assert.equal(q(SESSION_NO_EXEC + "walsender_syscall_error = '*, execve'\n"), false, "both kinds of walsender like sessions");
  assert.equal(q("walsender_syscall_allow = 'uname'\nwalsender_syscall_default = error\n"), true, "walsenders unlike sessions");
});

test("server_setting.<name> pins a PostgreSQL setting; run passes it last on postgres's command line", async () => {
  const pol = p("server_setting.archive_command = 'gzip < %p > /archive/%f'\nserver_setting.Session_Preload_Libraries = 'auto_explain'\nserver_setting.pgaudit.log = 'ddl'\n");
  assert.deepEqual([...pol.serverSettings!].map(([k, v]) => [k, v.value]), [
    ["archive_command", "gzip < %p > /archive/%f"], ["session_preload_libraries", "auto_explain"], ["pgaudit.log", "ddl"],
  ]);
  assert.ok(pol.notes.some((n) => /session_preload_libraries is pinned .* can still SET it/.test(n.message)), "a setting a superuser can SET is only half pinned");
  assert.throws(() => p("server_setting.a.b.c = 'x'\n"), /does not name a PostgreSQL setting/);
  assert.equal(p("").serverSettings, undefined);
  const { pinnedSettingArgs, commandLineSetting } = await import("../launcher/run.js");
  assert.deepEqual(pinnedSettingArgs(pol).slice(0, 2), ["-c", "archive_command=gzip < %p > /archive/%f"]);
  assert.equal(commandLineSetting(["-D", "x", "-c", "io_method=worker", "--io-method=io_uring"], "io_method"), "io_uring");
  assert.equal(commandLineSetting(["-cio_method=worker"], "io_method"), "worker");
  assert.equal(commandLineSetting(["-D", "x"], "io_method"), undefined);
});

test("program_syscall_*.<parent>: programs get their parent's program lists, whose unset lists are the parent's", async () => {
  const text = SESSION_NO_EXEC + "session_syscall_allow.etl = '*, execve'\narchiver_syscall_error = '*, fchown'\nprogram_syscall_allow.archiver = '*, fchown'\nprogram_syscall_error.session = '*, socket'\n";
  assert.equal(action(text, { context: "archiver" }, "fchown"), "error");
  assert.equal(action(text, { context: "archiver_program" }, "fchown"), "allow");
  assert.equal(action(text, { context: "session_program", role: "etl" }, "socket"), "error");
  // '*' and unset lists are the session's: execve stays denied to programs of sessions.
  assert.equal(action(text, { context: "session_program", role: "etl" }, "execve"), "error");
  // No program lists for the startup process: its programs have its context.
  assert.equal(action(text, { context: "startup_program" }, "fchown"), "allow");
  assert.throws(() => p("program_syscall_allow = 'uname'\n"), /must name the kind of process that runs the programs/);
  assert.throws(() => p("program_syscall_allow.checkpointer = 'uname'\n"), /archiver, startup or session/);
  const { programContextFor } = await import("../classify/classify.js");
  const pol = p(text);
  assert.deepEqual(programContextFor(pol, { context: "archiver" }), { context: "archiver_program" });
  assert.equal(programContextFor(pol, { context: "startup" }), undefined);
  assert.deepEqual(programContextFor(pol, { context: "session", role: "etl", database: "d" }), { context: "session_program", role: "etl", database: "d" });
  assert.deepEqual(programContextFor(pol, { context: "autovacuum_worker" }), { context: "session_program" });
  assert.equal(programContextFor(pol, { context: "walsender" }), undefined, "a physical walsender runs no SQL");
  assert.equal(programContextFor(p(SESSION_NO_EXEC), { context: "archiver" }), undefined);
  // An unclassified child of the postmaster runs postgres: program lists are not stacked on it.
  assert.equal(action("global_syscall_default = error\nglobal_syscall_allow = 'read'\nprogram_syscall_allow.archiver = 'uname'\n", { context: "unclassified" }, "read"), "allow");
});

test("show prints a walsender with a database and a program context (the commands docs/policy.md names)", async () => {
  const { execFileSync } = await import("node:child_process");
  const { mkdtempSync, writeFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  const { tmpdir } = await import("node:os");
  const { repoPath } = await import("../../test/support/paths.js");
  const file = join(mkdtempSync(join(tmpdir(), "pg_seccomp-show-")), "p.conf");
  writeFileSync(file, "global_syscall_default = allow\nsession_syscall_error = '*, execve'\narchiver_syscall_error = '*, uname'\nprogram_syscall_allow.archiver = '*, uname'\n");
  const show = (...args: string[]) => execFileSync(process.execPath, [repoPath("dist/src/cli/main.js"), "show", file, "--arch", "x86_64", ...args], { encoding: "utf8" });
  assert.match(show("--context", "walsender", "--database", "db"), /execve\s+\|\s+59 \| session->error/);
  assert.doesNotMatch(show("--context", "walsender"), /execve\s+\|\s+59 \| session->error/);
  assert.match(show("--context", "archiver_program"), /uname\s+\|\s+63 \| program->allow/);
});
