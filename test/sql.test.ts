// seccomp.pg_get_seccomp_filter() and seccomp.violations installed into a real database: the function
// answers as `pg_seccomp show` does for the calling role, and the view shows the supervisor's log.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { blocksTestedBy } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { hostArch, syscallNumber } from "../src/syscalls/index.js";

const skip = integrationSkip();
// The machine's own starter profile (aarch64's in the VM lab).
const ARCH = hostArch();
/** execve's number on this arch (59 on x86_64, 221 on aarch64), as the filter tables show it. */
const EXECVE = syscallNumber(ARCH, "execve")!;
const profile = readFileSync(repoPath(`profiles/postgresql-15-${ARCH}.conf`), "utf8");
let cluster: Cluster;
let server: RunningServer;
let policy: string;

before(async () => {
  if (skip) return;
  cluster = await newCluster();
  policy = writePolicy(profile + `
session_syscall_error = '*, execve'
session_syscall_allow.alice = '*, execve'
database_syscall_error.analytics = '*, execve'
set_client_filter = on
`);
  server = await startReady(cluster, ["--policy", policy]);
  query(cluster, "create role alice login in role pg_execute_server_program; create role bob login in role pg_execute_server_program, pg_monitor");
  query(cluster, "create database analytics");
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
});

function cli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
}

test("sql install: seccomp.pg_get_seccomp_filter() equals pg_seccomp show for the calling role and database", { skip }, () => {
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  for (const db of ["postgres", "analytics"]) {
    const r = cli("sql", "install", "-d", conn.replace("dbname=postgres", `dbname=${db}`), "-D", cluster.dataDir, "--arch", ARCH);
    assert.equal(r.status, 0, r.stderr);
  }
  for (const db of ["postgres", "analytics"]) {
    query(cluster, "grant execute on function seccomp.seccomp_filter() to alice, bob; grant execute on function seccomp.pg_get_seccomp_filter() to alice, bob", { db });
  }
  const cases: Array<[string, string, string[]]> = [
    ["bob", "postgres", []],
    ["alice", "postgres", ["--role", "alice"]],
    ["alice", "analytics", ["--role", "alice", "--database", "analytics"]],
    ["bob", "analytics", ["--database", "analytics"]],
  ];
  for (const [role, db, showArgs] of cases) {
    const fromSql = psql(cluster, "copy (select * from seccomp.pg_get_seccomp_filter() order by 4,1) to stdout with (format csv, header)", { role, db });
    assert.ok(fromSql.ok, fromSql.stderr);
    const shown = cli("show", policy, "--format", "csv", "--arch", ARCH, ...showArgs);
    assert.equal(shown.status, 0, shown.stderr);
    // Same rows; ORDER BY in the database uses its collation (C here), so compare as sets per context.
    const norm = (t: string) => t.trim().split("\n").slice(1).sort();
    assert.deepEqual(norm(fromSql.stdout), norm(shown.stdout), `${role}@${db}`);
    assert.match(fromSql.stdout, new RegExp(`execve,${EXECVE},(session|database)->(allow|error),session`));
  }
  const aliceExec = query(cluster, "select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "alice" });
  assert.equal(aliceExec, "session->allow");
  const bobExec = query(cluster, "select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "bob" });
  assert.equal(bobExec, "session->error");
  // pgseccomp's name gives the same rows.
  assert.equal(
    query(cluster, "select count(*) from (select * from seccomp.seccomp_filter() except select * from seccomp.pg_get_seccomp_filter()) d", { role: "alice" }),
    "0",
  );
  // The login role decides, as the kernel does: SET SESSION AUTHORIZATION does not change it.
  const switched = psql(cluster, "set session authorization bob; select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "postgres" });
  assert.ok(switched.ok, switched.stderr);
  assert.match(switched.stdout, /session->error/);
  query(cluster, "grant alice to postgres");
  const asAlice = psql(cluster, "set session authorization alice; select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "postgres" });
  assert.match(asAlice.stdout, /session->error/, "postgres logged in: postgres's filter, not alice's");
  // EXECUTE as pgseccomp grants it: not to PUBLIC.
  query(cluster, "create role carol login");
  const carol = psql(cluster, "select * from seccomp.seccomp_filter()", { role: "carol" });
  assert.equal(carol.ok, false);
  assert.match(carol.stderr, /permission denied for function seccomp_filter/);
});

test("docs/deploy.md's SQL statements, as written, run as the bootstrap superuser and grant what they say", { skip }, () => {
  // The block marked test=sql (docs/deploy.md, "SQL functions"), read from the Markdown and fed to
  // psql as it stands. Nothing substituted: this test makes the roles it names, and takes back
  // what the test above granted alice so that the block's own grants are what is checked.
  const [block, ...more] = blocksTestedBy("sql");
  assert.ok(block && more.length === 0, "one block");
  assert.match(block.body, /grant pg_monitor to dba_role/);
  query(cluster, "create role dba_role login; revoke execute on function seccomp.seccomp_filter() from alice; revoke execute on function seccomp.set_client_filter(text, text, text, text, text) from alice");
  assert.equal(psql(cluster, "select count(*) from seccomp.seccomp_filter()", { role: "alice" }).ok, false, "alice may not before the grant");
  assert.equal(psql(cluster, "select count(*) from seccomp.violations", { role: "dba_role" }).ok, false, "dba_role may not before the grant");
  const r = spawnSync(join(cluster.binDir, "psql"), ["-X", "-v", "ON_ERROR_STOP=1", "-U", "postgres", "-d", "postgres", "-f", "-"], {
    input: block.body,
    encoding: "utf8",
    env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) },
  });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^ *syscall *\| *syscallnum *\| *filter_action *\| *context *$/m, r.stdout);
  assert.match(r.stdout, new RegExp(`^ *execve *\\| *${EXECVE} *\\|`, "m"), r.stdout);
  assert.match(r.stdout, /^GRANT ROLE$/m);
  assert.ok(Number(query(cluster, "select count(*) from seccomp.seccomp_filter()", { role: "alice" })) > 0);
  assert.equal(query(cluster, "select has_function_privilege('alice', 'seccomp.set_client_filter(text, text, text, text, text)', 'execute')"), "t");
  assert.ok(psql(cluster, "select count(*) from seccomp.violations", { role: "dba_role" }).ok, "pg_monitor reads seccomp.violations");
  // Back as the test above left it, for the tests below.
  query(cluster, "grant execute on function seccomp.seccomp_filter() to alice; revoke execute on function seccomp.set_client_filter(text, text, text, text, text) from alice; drop role dba_role");
});

test("seccomp.violations shows denied calls to pg_monitor members only", { skip }, async () => {
  const r = psql(cluster, "copy (select 1) to program 'cat > /dev/null'", { role: "bob" });
  assert.equal(r.ok, false);
  await waitFor(() => /execve/.test(psql(cluster, "select syscall from seccomp.violations", { role: "bob" }).stdout), 10_000, "the view to show the denial");
  const row = query(cluster, "select role || ' ' || database || ' ' || syscall || ' ' || action || ' ' || context from seccomp.violations where role = 'bob' limit 1", { role: "bob" });
  assert.equal(row, "bob postgres execve error session");
  const denied = psql(cluster, "select * from seccomp.violations", { role: "alice" });
  assert.equal(denied.ok, false);
  assert.match(denied.stderr, /permission denied/);
});

test("set_client_filter narrows the calling session only, once, and only for roles granted EXECUTE", { skip }, () => {
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const installed = cli("sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", ARCH, "--json");
  assert.equal(installed.status, 0, installed.stderr);
  assert.equal((JSON.parse(installed.stdout) as { schema: string }).schema, "seccomp");
  query(cluster, "grant execute on function seccomp.set_client_filter(text, text, text, text, text) to alice; grant usage on schema seccomp to alice; grant execute on function seccomp.pg_get_seccomp_filter() to alice");
  // alice may exec (her role's list); in a session that narrows itself, she may not. The seed's
  // own usage narrows an allowed syscall by naming it in the error list.
  const narrowed = spawnSync(join(cluster.binDir, "psql"), [
    "-X", "-U", "alice", "-d", "postgres", "-v", "ON_ERROR_STOP=0",
    "-c", "copy (select 1) to program 'cat > /dev/null'",
    "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'execve', NULL) as answer",
    "-c", "copy (select 2) to program 'cat > /dev/null'",
    "-c", "select syscall || ' ' || filter_action from seccomp.pg_get_seccomp_filter() where context = 'session' and syscall in ('execve', 'read') order by 1",
    "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'execve', NULL)",
    "-c", "select 'still serving'",
  ], { encoding: "utf8", env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) } });
  const out = narrowed.stdout + narrowed.stderr;
  assert.match(out, /^COPY 1$/m, `before: alice may exec\n${out}`);
  assert.match(out, /^ OK$/m, `set_client_filter returns 'OK'\n${out}`);
  assert.doesNotMatch(out, /^COPY 2$/m, "after set_client_filter the same session may not");
  assert.match(out, /execve client->error/, `seccomp.pg_get_seccomp_filter() shows the client filter\n${out}`);
  assert.match(out, /read client->allow/, out); // the client's allow list (NULL: the session's), as pgseccomp labels it
  assert.match(out, /ERROR:  Client filter may only be loaded once/, `a second call is refused as pgseccomp refuses it\n${out}`);
  assert.match(out, /still serving/);
  // pgseccomp's errors and hints.
  const bad = psql(cluster, "select seccomp.set_client_filter('sometimes', NULL, NULL, NULL, NULL)", { role: "alice" });
  assert.equal(bad.ok, false);
  assert.match(bad.stderr, /ERROR:  Default action not valid\nHINT:  Must be "allow", "log", "error", or "kill"\./);
  const unknown = psql(cluster, "select seccomp.set_client_filter(NULL, 'opennat', NULL, NULL, NULL)", { role: "alice" });
  assert.match(unknown.stderr, /ERROR:  failed to load client seccomp filter\nDETAIL:  .*unknown syscall "opennat"/);
  assert.doesNotMatch(bad.stderr + unknown.stderr, /could not seek/);
  // Another session of alice is not affected.
  assert.ok(psql(cluster, "copy (select 3) to program 'cat > /dev/null'", { role: "alice" }).ok);
  // bob has no EXECUTE.
  const bob = psql(cluster, "select seccomp.set_client_filter('error', '', '', '', '')", { role: "bob" });
  assert.equal(bob.ok, false);
  assert.match(bob.stderr, /permission denied/);
});

test("what a seccomp.set_client_filter() filter denies in the session itself is in the violation log", { skip }, async () => {
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  assert.equal(cli("sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", ARCH).status, 0);
  query(cluster, "grant execute on function seccomp.set_client_filter(text, text, text, text, text) to alice; grant usage on schema seccomp to alice; grant execute on function pg_ls_dir(text) to alice");
  const before = query(cluster, "select count(*) from seccomp.violations where role = 'alice' and syscall in ('getdents64', 'execve')");
  assert.equal(before, "0");
  const r = spawnSync(join(cluster.binDir, "psql"), [
    "-X", "-U", "alice", "-d", "postgres", "-v", "ON_ERROR_STOP=0",
    "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'getdents64, execve', NULL) as answer",
    "-c", "select count(*) from pg_ls_dir('.')",
    "-c", "copy (select 1) to program 'cat > /dev/null'",
  ], { encoding: "utf8", env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) } });
  const out = r.stdout + r.stderr;
  assert.match(out, /^ OK$/m, out);
  assert.match(out, /could not read directory "\.": Operation not permitted/, out);
  // The session's own call is attributed (a process the supervisor knew alive). The exec of
  // popen's child is not: that child is gone (posix_spawn reaps it) before its record can be tied
  // to the session, and a record of a process nobody knew is dropped and counted, never
  // attributed (the server's OS user can forge one: test/attacks/kernel-records.test.ts).
  await waitFor(() => query(cluster, "select count(*) from seccomp.violations where syscall = 'getdents64' and context = 'session' and action = 'error'") !== "0", 10_000, `the denial in the log\n${server.stderr()}`);
  assert.equal(query(cluster, "select role from seccomp.violations where syscall = 'getdents64' limit 1"), "alice", "the narrowed session's own call carries its role");
});

test("sql install without the data directory embeds the policy's rows: the same as show", { skip }, () => {
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const r = cli("sql", "install", "-d", conn, "--policy", policy, "--schema", "seccomp_embedded", "--arch", ARCH);
  assert.equal(r.status, 0, r.stderr);
  query(cluster, "grant execute on function seccomp_embedded.pg_get_seccomp_filter() to alice");
  const fromSql = psql(cluster, "copy (select * from seccomp_embedded.pg_get_seccomp_filter()) to stdout with (format csv)", { role: "alice" });
  assert.ok(fromSql.ok, fromSql.stderr);
  const shown = cli("show", policy, "--format", "csv", "--arch", ARCH, "--role", "alice");
  const norm = (t: string) => t.trim().split("\n").filter((l) => !l.startsWith("syscall,")).sort();
  assert.deepEqual(norm(fromSql.stdout), norm(shown.stdout));
  assert.match(fromSql.stdout, new RegExp(`execve,${EXECVE},session->allow,session`));
});

test("set_client_filter says so when the policy does not enable it, and touches nothing", { skip }, () => {
  // The same server; the SQL installed from a policy without set_client_filter = on, into a
  // schema of its own.
  const off = writePolicy(profile + "\nsession_syscall_allow.alice = '*, execve'\n");
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const inst = cli("sql", "install", "-d", conn, "-D", cluster.dataDir, "--policy", off, "--schema", "seccomp_off", "--arch", ARCH);
  assert.equal(inst.status, 0, inst.stderr);
  assert.match(inst.stderr, /note: .* does not set set_client_filter = on: set_client_filter\(\) raises an error saying so/);
  assert.doesNotMatch(inst.stderr, /NOTICE/, "the other installs of ours (schema seccomp, seccomp_embedded) are not look-alikes");
  query(cluster, "grant usage on schema seccomp_off to alice; grant execute on function seccomp_off.set_client_filter(text, text, text, text, text) to alice");
  const r = psql(cluster, "select seccomp_off.set_client_filter(NULL, NULL, NULL, 'execve', NULL)", { role: "alice" });
  assert.equal(r.ok, false);
  assert.match(r.stderr, /ERROR:  set_client_filter is not enabled in the policy\nDETAIL:  \S+ does not set set_client_filter = on\nHINT:  add set_client_filter = on to the policy, restart the server under pg_seccomp run/, r.stderr);
  assert.ok(psql(cluster, "copy (select 4) to program 'cat > /dev/null'", { role: "alice" }).ok, "nothing was narrowed");
});
