import { test } from "node:test";
import assert from "node:assert/strict";
import { kindExistsIn, kindsAbsentIn, parsePolicyText, resolveFilter, loadPolicyFile } from "./policy.js";
import { memorySource } from "./source.js";
import { PolicyError } from "./errors.js";
import { contextDecisions, decisionFor } from "./decision.js";
import { syscallNumber } from "../syscalls/index.js";
import { compilePolicy } from "../compile/compile.js";

const base = "seccomp = on\nglobal_syscall_default = 'error'\n";

function fails(text: string, re: RegExp, line?: number): void {
  assert.throws(() => parsePolicyText(text, "t.conf"), (e: unknown) => {
    assert.ok(e instanceof PolicyError, String(e));
    assert.match(e.message, re);
    if (line !== undefined) assert.equal(e.loc?.line, line, e.message);
    return true;
  });
}

const nr = (name: string) => syscallNumber("x86_64", name)!;
const leafOf = (text: string, ctx: "global" | "session", name: string, role?: string) => {
  const p = parsePolicyText(text, "t.conf");
  const d = decisionFor(contextDecisions(p, "x86_64", { context: ctx, role }), nr(name));
  assert.equal(d.kind, "leaf");
  return d.kind === "leaf" ? `${d.source}->${d.action.kind}${d.action.errno !== undefined ? ":" + d.action.errno : ""}` : "";
};

test("seed semantics: session adds restrictions; '*' inherits; ties go to the session", () => {
  const text = base + "global_syscall_allow = 'read,write,clone'\nsession_syscall_default = 'log'\nsession_syscall_allow = 'read'\nsession_syscall_kill = '*'\n";
  assert.equal(leafOf(text, "global", "clone"), "global->allow");
  assert.equal(leafOf(text, "session", "clone"), "session->log");
  assert.equal(leafOf(text, "session", "read"), "session->allow");
  // Global error (default) beats session log for a syscall no list names.
  assert.equal(leafOf(text, "session", "mount"), "global->error:13");
});

test("a policy without session settings restricts sessions exactly as the global filter", () => {
  const text = base + "global_syscall_allow = 'read'\nglobal_syscall_kill = 'ptrace'\n";
  assert.equal(leafOf(text, "session", "read"), "session->allow");
  assert.equal(leafOf(text, "session", "ptrace"), "session->kill");
  assert.equal(leafOf(text, "session", "mount"), "session->error:13");
});

test("pgseccomp names, per-role lists, and fallback of a role's missing lists", () => {
  const text = [
    "shared_preload_libraries = 'pgseccomp'",
    "pgseccomp.enabled = on",
    "pgseccomp.global_syscall_default = 'allow'",
    "pgseccomp.session_syscall_default = 'error'",
    "pgseccomp.session_syscall_allow = 'read,write'",
    "pgseccomp.session_roles = 'joe,alice'",
    "session_syscall_allow.joe = 'read,write,clone'",
    "session_syscall_default.joe = 'log'",
  ].join("\n");
  const p = parsePolicyText(text, "t.conf");
  assert.deepEqual([...p.roles.keys()], ["alice", "joe"]);
  assert.match(p.notes[0]!.message, /shared_preload_libraries is ignored/);
  assert.equal(leafOf(text, "session", "clone"), "session->error:13");
  assert.equal(leafOf(text, "session", "clone", "joe"), "session->allow");
  assert.equal(leafOf(text, "session", "mount", "joe"), "session->log");
  assert.equal(leafOf(text, "session", "clone", "alice"), "session->error:13");
});

test("errno: configurable default, per entry, and in defaults", () => {
  const text = base + "syscall_error_errno = EPERM\nglobal_syscall_error = 'clone3:ENOSYS, mount'\nsession_syscall_default = 'error:38'\n";
  assert.equal(leafOf(text, "global", "clone3"), "global->error:38");
  assert.equal(leafOf(text, "global", "mount"), "global->error:1");
  assert.equal(leafOf(text, "global", "read"), "global->error:1");
});

test("groups expand per arch; an explicit name beats a group", () => {
  const text = base + "global_syscall_kill = '@mount'\nglobal_syscall_allow = 'mount_setattr'\n";
  assert.equal(leafOf(text, "global", "umount2"), "global->kill");
  assert.equal(leafOf(text, "global", "mount_setattr"), "global->allow");
  const p = parsePolicyText(text, "t.conf");
  assert.ok(resolveFilter(p.global, "aarch64").rules.size > 3);
});

test("errors name the place and say what to do", () => {
  fails(base + "global_syscall_allow = 'read,opennat'\n", /unknown syscall "opennat".*openat/s, 3);
  fails(base + "global_syscall_allow = 'read'\nglobal_syscall_kill = 'read'\n", /"read" is in both the allow list \(t.conf:3:/, 4);
  fails(base + "global_syscall_allow = '*'\n", /"\*" means "the list as set before" \(in an overlay list: the global list\)/, 3);
  fails(base + "global_syscall_loq = ''\n", /unknown setting "global_syscall_loq".*global_syscall_log/s, 3);
  fails(base + "global_syscall_kill = '@mnt'\n", /unknown syscall group "@mnt"/, 3);
  fails(base + "global_syscall_error = 'clone3:ENOSYX'\n", /unknown errno "ENOSYX"/, 3);
  fails(base + "global_syscall_allow = 'read:EPERM'\n", /errno belongs only in an error list/, 3);
  fails(base + "session_syscall_default = 'deny'\n", /unknown action "deny"/, 3);
  fails(base + "global_syscall_allow = 'socket(arg7 == 1)'\n", /arg0 to arg5/, 3);
  fails(base + "global_syscall_allow = 'socket(arg0 = 1)'\n", /cannot read argument condition/, 3);
  fails(base + "global_syscall_allow = 'read,,write'\n", /empty entry/, 3);
  fails("seccomp = on\nglobal_syscall_allow = 'read'\n", /global_syscall_default is not set/, 2);
  fails("seccomp = maybe\nglobal_syscall_default = allow\n", /not a boolean/, 1);
});

test("a syscall that does not exist on the target arch is an error saying so", () => {
  const p = parsePolicyText(base + "global_syscall_allow = 'read,stat'\n", "t.conf");
  assert.throws(() => resolveFilter(p.global, "aarch64"), /"stat" does not exist on aarch64/);
  assert.equal(resolveFilter(p.global, "x86_64").rules.size, 2);
});

test("conditions: ORed across entries, ANDed within one, most restrictive match wins", () => {
  const text = base + "global_syscall_allow = 'socket(arg0 == 1), socket(arg0 == 2, arg1 & 0xf == 1), read'\nglobal_syscall_kill = 'socket(arg0 == 16)'\n";
  const p = parsePolicyText(text, "t.conf");
  const f = resolveFilter(p.global, "x86_64");
  assert.equal(f.rules.get(nr("socket"))!.rules.length, 3);
  assert.equal(f.rules.get(nr("socket"))!.rules[0]!.conditions[0]!.width, 32);
});

test("a role not listed in session_roles is ignored with a note", () => {
  const p = parsePolicyText(base + "session_roles = 'a'\nsession_syscall_allow.b = 'read'\n", "t.conf");
  assert.deepEqual([...p.roles.keys()], ["a"]);
  assert.ok(p.notes.some((n) => /does not list role "b", so it is ignored/.test(n.message)));
});

test("files are read through includes and listed for permission checks", () => {
  const p = loadPolicyFile("/etc/pg/main.conf", memorySource({
    "/etc/pg/main.conf": "include 'lists.conf'\nglobal_syscall_default = kill\n",
    "/etc/pg/lists.conf": "global_syscall_allow = 'read'\n",
  }));
  assert.deepEqual(p.files, ["/etc/pg/main.conf", "/etc/pg/lists.conf"]);
  assert.equal(p.global.defaultAction.kind, "kill");
});

test("explicit session entries beat inherited ones; a role's explicit entry beats the session's", () => {
  const text = base + [
    "global_syscall_allow = 'read, write, execve'",
    "session_syscall_error = '*, execve'",
    "session_syscall_allow.etl = '*, execve'",
  ].join("\n");
  assert.equal(leafOf(text, "global", "execve"), "global->allow");
  assert.equal(leafOf(text, "session", "execve"), "session->error:13");
  assert.equal(leafOf(text, "session", "execve", "etl"), "session->allow");
  assert.equal(leafOf(text, "session", "read", "etl"), "session->allow");
  // The role cannot loosen what the global filter denies.
  assert.equal(leafOf(base + "session_syscall_allow.etl = 'mount'\n", "session", "mount", "etl"), "global->error:13");
});

test("process, database and unclassified contexts stack as the kernel would", () => {
  const text = base + [
    "global_syscall_allow = 'read, write, listen, accept, bind, execve, socket'",
    "session_syscall_error = '*, listen, accept, bind'",
    "postmaster_syscall_error = '*, execve'",
    "autovacuum_worker_syscall_kill = '*, socket'",
    "database_syscall_error.analytics = '*, execve'",
    "session_syscall_error.etl = '*, listen, accept, bind'",
    "session_syscall_allow.etl = '*, execve'",
  ].join("\n");
  const leaf = (c: Parameters<typeof contextDecisions>[2], name: string) => {
    const d = decisionFor(contextDecisions(parsePolicyText(text, "t.conf"), "x86_64", c), nr(name));
    return d.kind === "leaf" ? `${d.source}->${d.action.kind}` : "branch";
  };
  // The postmaster may listen and not exec; sessions may exec and not listen.
  assert.equal(leaf({ context: "postmaster" }, "listen"), "postmaster->allow");
  assert.equal(leaf({ context: "postmaster" }, "execve"), "postmaster->error");
  assert.equal(leaf({ context: "session" }, "listen"), "session->error");
  assert.equal(leaf({ context: "session" }, "execve"), "session->allow");
  assert.equal(leaf({ context: "session", database: "analytics" }, "execve"), "database->error");
  assert.equal(leaf({ context: "session", role: "etl", database: "analytics" }, "execve"), "database->error");
  assert.equal(leaf({ context: "session", role: "etl" }, "execve"), "session->allow");
  assert.equal(leaf({ context: "autovacuum_worker" }, "socket"), "autovacuum_worker->kill");
  assert.equal(leaf({ context: "checkpointer" }, "socket"), "global->allow");
  // Unclassified children get the most restrictive of every child context.
  assert.equal(leaf({ context: "unclassified" }, "socket"), "autovacuum_worker->kill");
  assert.equal(leaf({ context: "unclassified" }, "execve"), "database->error");
  assert.equal(leaf({ context: "unclassified" }, "read"), "autovacuum_worker->allow");
  // A parallel worker gets its leader's session filters.
  assert.equal(leaf({ context: "parallel_worker", role: "etl", database: "analytics" }, "listen"), "session->error");
});

test("a parallel worker gets its row's role's narrowing, never its allowances beyond the session's (its row is forgeable)", () => {
  const text = base + [
    "global_syscall_allow = 'read, write, execve, socket'",
    "session_syscall_error = '*, execve'",
    "session_syscall_allow.alice = '*, execve'",
    "session_syscall_error.bob = '*, execve, socket'",
  ].join("\n");
  const leaf = (c: Parameters<typeof contextDecisions>[2], name: string) => {
    const d = decisionFor(contextDecisions(parsePolicyText(text, "t.conf"), "x86_64", c), nr(name));
    return d.kind === "leaf" ? `${d.source}->${d.action.kind}` : "branch";
  };
  assert.equal(leaf({ context: "session", role: "alice" }, "execve"), "session->allow");
  assert.equal(leaf({ context: "parallel_worker", role: "alice" }, "execve"), "session->error");
  assert.equal(leaf({ context: "parallel_worker", role: "alice", database: "db" }, "execve"), "session->error");
  assert.equal(leaf({ context: "parallel_worker", role: "bob" }, "socket"), "session->error");
  assert.equal(leaf({ context: "parallel_worker", role: "carol" }, "socket"), "session->allow");
});

test("a database setting needs a name; process kinds cannot have per-role settings", () => {
  fails(base + "database_syscall_error = 'execve'\n", /needs a database name/, 3);
  fails(base + "checkpointer_syscall_error.bob = 'execve'\n", /per-role settings exist only for session lists/, 3);
});

test("process kinds of later (and earlier) majors are accepted on every version, with a note", () => {
  const p = parsePolicyText(
    "global_syscall_default = 'error'\nglobal_syscall_allow = 'read'\nio_worker_syscall_allow = '*, io_uring_enter'\n" +
      "walsummarizer_syscall_default = 'kill'\nslotsync_worker_syscall_allow = '*'\nstats_collector_syscall_allow = '*'\n",
    "multi.conf",
  );
  assert.deepEqual([...p.processes.keys()].sort(), ["io_worker", "slotsync_worker", "stats_collector", "walsummarizer"]);
  assert.ok(p.notes.some((n) => /io_worker: io workers .* exists in PostgreSQL 18 and later only/.test(n.message) && n.loc.line === 3));
  assert.deepEqual(kindsAbsentIn(p, 18).map((m) => m.split(" ")[4]), ["stats_collector"]);
  assert.deepEqual(kindsAbsentIn(p, 15).map((m) => m.split(" ")[4]).sort(), ["io_worker", "slotsync_worker", "stats_collector", "walsummarizer"]);
  assert.deepEqual(kindsAbsentIn(p, 14).map((m) => m.split(" ")[4]).sort(), ["io_worker", "slotsync_worker", "walsummarizer"]);
  assert.match(kindsAbsentIn(p, 16).find((m) => m.includes("io_worker"))!, /^PostgreSQL 16 has no io_worker processes \(io workers \(io_method = worker\): PostgreSQL 18 and later\)/);
  assert.equal(kindExistsIn("checkpointer", 14), true);
});

test("a double-quoted list entry is the syscall it names, case kept (as SplitIdentifierString reads it)", () => {
  const p = parsePolicyText(`global_syscall_default = allow\nglobal_syscall_error = '"close", getdents64'\n`, "q.conf");
  assert.deepEqual(p.global.entries.map((e) => e.name), ["close", "getdents64"]);
  assert.throws(() => compilePolicy(parsePolicyText(`global_syscall_default = allow\nglobal_syscall_error = '"Close"'\n`, "q.conf"), "x86_64", { context: "global" }), /unknown syscall "Close"/);
});
