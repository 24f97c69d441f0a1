// Attacks on `pg_seccomp sql install` by roles that are not superusers, against a real
// `pg_seccomp run` server on PostgreSQL 14 (PUBLIC may create in public), Debian's 15 and 18:
// (a) the database's owner creates schema `seccomp` with its own function bodies first;
// (b) a role creates public.seccomp_filter() first (on 14 any role, on 15+ the database's owner,
//     who owns public);
// (c) the database's owner sets a hostile search_path (a schema of look-alike functions and
//     operators before pg_catalog) and role for the database, and a caller's temporary view
//     shadows pg_roles;
// (d) a reinstall over our own objects, by a superuser that is not the bootstrap one.
// Each attacker's function tries `ALTER ROLE <attacker> SUPERUSER` with the caller's rights: it
// succeeds only if a superuser runs it. Before install created its own schema (it did `create
// schema if not exists` and `create or replace` in public), (a), (b) and (c) made the attacker a
// superuser or let it keep the objects, and (d) left them owned by the installing role.
// Also (issue 18): the functions find the launcher's table after the server is started the other
// documented way (the pg_ctl wrapper, as the server's user) with no new install, and install
// refuses a violation log the server cannot read, saying why.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, startReady, stop, waitFor, withExecDeniedGlobally, writePolicy, type RunningServer } from "../support/server.js";
import { majors } from "../support/majors.js";
import { repoPath } from "../support/paths.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip();
const WRAPPER = repoPath("contrib/pg_ctl/postgres-seccomp");

/** A body that makes `role` a superuser when a superuser runs it (and does nothing otherwise). */
const escalate = (role: string) => `begin execute 'alter role ${role} superuser'; exception when others then null; end;`;

for (const m of majors().filter((x) => [14, 15, 18].includes(x.major))) {
  describe(`sql install under attack, PostgreSQL ${m.major}`, { skip: skip || m.skip }, () => {
    let cluster: Cluster;
    let server: RunningServer | undefined;
    let policy: string;
    /** A root-owned directory for the violation log (0755: the server's user may enter it). */
    let logDir: string;

    const conninfo = (db: string, user = "postgres") => `host=${cluster.socketDir} port=${cluster.port} user=${user} dbname=${db}`;
    const install = (db: string, user = "postgres", ...extra: string[]) =>
      spawnSync(process.execPath, [BIN, "sql", "install", "-d", conninfo(db, user), "-D", cluster.dataDir, "--arch", hostArch(), ...extra], { encoding: "utf8" });
    const isSuper = (role: string) => query(cluster, `select rolsuper from pg_roles where rolname = '${role}'`);
    /** Objects install creates, by name, anywhere in the database. */
    const ours = (db: string) =>
      Number(query(cluster, "select (select count(*) from pg_proc where proname in ('filter_now', 'launcher_records', 'backend_start_ticks', 'violations_raw')) + (select count(*) from pg_class where relname in ('violations', 'filter_rows'))", { db }));

    before(async () => {
      if (skip || m.skip) return;
      cluster = await createCluster({ binDir: m.binDir! });
      logDir = mkdtempSync(join(tmpdir(), "pg_seccomp-sqllog-"));
      chmodSync(logDir, 0o755);
      const profile = readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8");
      policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n", `sql-attack-${m.major}.conf`);
      server = await startReady(cluster, ["--policy", policy, "--log", join(logDir, "violations.jsonl")]);
      query(cluster, "create role mallory login; create role eve login; create role alice login; create role bob login; create role dba login superuser");
      query(cluster, "create database shop owner mallory");
    });
    after(async () => {
      if (server) await stop(server);
      if (cluster) destroyCluster(cluster);
      if (logDir) rmSync(logDir, { recursive: true, force: true });
    });

    test("(a) the database's owner creates schema seccomp first: install refuses, naming the schema and its owner, and creates nothing", async () => {
      query(cluster, `create schema seccomp;
        create function seccomp.seccomp_filter(out syscall text, out syscallnum integer, out filter_action text, out context text)
          returns setof record language plpgsql as $$ begin ${escalate("mallory")} return; end $$;
        grant usage on schema seccomp to public`, { db: "shop", role: "mallory" });
      const r = install("shop");
      assert.notEqual(r.status, 0, `install must refuse\n${r.stderr}`);
      assert.match(r.stderr, /schema seccomp \(oid \d+\) already exists, owned by mallory/);
      // One message in the client's style: the server's ERROR, DETAIL and HINT, no psql prefix or CONTEXT.
      assert.match(r.stderr, /^pg_seccomp: error: sql install into .*: nothing was installed: schema seccomp \(oid \d+\) already exists, owned by mallory\npg_seccomp: detail: .+\npg_seccomp: hint: .*DROP SCHEMA seccomp CASCADE/m);
      assert.doesNotMatch(r.stderr, /CONTEXT|psql:<stdin>/);
      assert.doesNotMatch(r.stderr, /at [^\n]*\.js:\d+/, "no stack trace");
      assert.equal(ours("shop"), 0, "nothing of ours was created");
      assert.equal(query(cluster, "select count(*) from pg_proc where proname in ('seccomp_filter', 'pg_get_seccomp_filter', 'set_client_filter')", { db: "shop" }), "1", "mallory's function only");
      // A non-superuser cannot install at all (it would own what a superuser later calls).
      query(cluster, "drop schema seccomp cascade", { db: "shop", role: "mallory" });
      const byOwner = install("shop", "mallory");
      assert.notEqual(byOwner.status, 0, byOwner.stderr);
      assert.match(byOwner.stderr, /sql install must connect as a superuser; mallory is not one/);
      assert.equal(ours("shop"), 0);
    });

    test(`(b) ${m.major <= 14 ? "any role" : "the database's owner"} creates public.seccomp_filter() first: install refuses to install beside it, never adopts it, and the documented call never runs it`, async () => {
      const [attacker, db] = m.major <= 14 ? ["eve", "postgres"] : ["mallory", "shop"];
      const plant = `create function public.seccomp_filter(out syscall text, out syscallnum integer, out filter_action text, out context text)
          returns setof record language plpgsql as $$ begin ${escalate(attacker)} return; end $$`;
      query(cluster, plant, { db, role: attacker });
      const r = install(db);
      assert.notEqual(r.status, 0, `install must refuse\n${r.stderr}`);
      assert.match(r.stderr, new RegExp(`function public\\.seccomp_filter\\(\\) \\(oid \\d+\\) exists, owned by ${attacker}`));
      assert.match(r.stderr, /DROP FUNCTION public\.seccomp_filter\(\)/);
      assert.equal(ours(db), 0, "nothing of ours was created");
      assert.equal(query(cluster, "select pg_get_userbyid(proowner) || ' ' || (prosrc like '%alter role%') from pg_proc where oid = 'public.seccomp_filter()'::regprocedure", { db }), `${attacker} true`, "neither adopted nor replaced");
      // The DBA drops it, as the hint says, and installs; the attacker plants it again afterwards.
      query(cluster, "drop function public.seccomp_filter()", { db });
      const ok = install(db);
      assert.equal(ok.status, 0, ok.stderr);
      query(cluster, plant, { db, role: attacker });
      // The documented call names the schema: ours runs, the attacker's never does.
      const rows = psql(cluster, "select count(*) from seccomp.seccomp_filter()", { db });
      assert.ok(rows.ok, rows.stderr);
      assert.ok(Number(rows.stdout.trim()) > 0, "our function answered");
      assert.equal(isSuper(attacker), "f", "the attacker's body never ran as a superuser");
      assert.equal(query(cluster, "select count(*) from pg_proc where pronamespace = 'public'::regnamespace and proowner = 10 and proname in ('seccomp_filter', 'pg_get_seccomp_filter', 'set_client_filter')", { db }), "0", "nothing of ours in public");
      // A reinstall now refuses again, naming the look-alike.
      assert.match(install(db).stderr, new RegExp(`public\\.seccomp_filter\\(\\) \\(oid \\d+\\) exists, owned by ${attacker}`));
      query(cluster, "drop function public.seccomp_filter()", { db });
    });

    test("(c) a hostile search_path and role for the database, look-alike functions and operators before pg_catalog, a temporary pg_roles: install creates the same objects, owned by the bootstrap superuser, and they do what they did", async () => {
      // A denied call, so that the violation view has rows to run its expressions on.
      assert.equal(psql(cluster, "copy (select 1) to program 'true'", { db: "shop" }).ok, false);
      query(cluster, `create schema evil; grant usage on schema evil to public;
        create function evil.jsonb_array_elements_text(j jsonb) returns setof text language plpgsql
          as $$ begin ${escalate("mallory")} return query select pg_catalog.jsonb_array_elements_text(j); end $$;
        create function evil.field(j jsonb, k text) returns text language plpgsql
          as $$ begin ${escalate("mallory")} return pg_catalog.jsonb_object_field_text(j, k); end $$;
        create operator evil.->> (leftarg = jsonb, rightarg = text, function = evil.field);
        alter database shop set search_path = evil, pg_catalog, public;
        alter database shop set role = mallory`, { db: "shop", role: "mallory" });
      try {
        const r = install("shop");
        assert.equal(r.status, 0, r.stderr);
        assert.equal(isSuper("mallory"), "f", "installing ran none of mallory's code");
        assert.equal(query(cluster, "select count(*) from pg_proc where pronamespace = 'seccomp'::regnamespace and proowner <> 10", { db: "shop" }), "0", "functions owned by the bootstrap superuser");
        assert.equal(query(cluster, "select count(*) from pg_class where relnamespace = 'seccomp'::regnamespace and relowner <> 10", { db: "shop" }), "0", "relations owned by the bootstrap superuser");
        assert.equal(query(cluster, "select nspowner from pg_namespace where nspname = 'seccomp'", { db: "shop" }), "10");
        // From here a superuser connects as itself (the role setting made it mallory), with the
        // hostile search_path still set.
        query(cluster, "alter database shop reset role");
        // The view is bound to pg_catalog's functions and operators, none of evil's.
        const bound = query(cluster, `select count(*) from pg_depend d
            left join pg_proc p on d.refclassid = 'pg_proc'::regclass and p.oid = d.refobjid
            left join pg_operator o on d.refclassid = 'pg_operator'::regclass and o.oid = d.refobjid
           where d.classid = 'pg_rewrite'::regclass and d.objid = (select oid from pg_rewrite where ev_class = 'seccomp.violations'::regclass)
             and coalesce(p.pronamespace, o.oprnamespace) = 'evil'::regnamespace`, { db: "shop" });
        assert.equal(bound, "0");
        // Every SECURITY DEFINER function pins search_path with pg_temp last.
        assert.equal(query(cluster, "select count(*) from pg_proc where pronamespace = 'seccomp'::regnamespace and prosecdef and not proconfig @> array['search_path=pg_catalog, pg_temp']", { db: "shop" }), "0");
        // A superuser reads the view and calls the functions under the hostile settings.
        query(cluster, "grant pg_monitor to postgres");
        await waitFor(() => Number(query(cluster, "select count(*) from seccomp.violations where syscall = 'execve'", { db: "shop" })) > 0, 10_000, "the denied exec in seccomp.violations");
        query(cluster, "select count(*) from seccomp.seccomp_filter()", { db: "shop" });
        assert.equal(isSuper("mallory"), "f", "reading them ran none of mallory's code");
      } finally {
        query(cluster, "alter role mallory nosuperuser; alter database shop reset search_path; alter database shop reset role");
      }
      // A caller's temporary view named pg_roles does not change whose rows it gets.
      query(cluster, "grant execute on function seccomp.seccomp_filter() to alice, bob", { db: "shop" });
      const own = (role: string, pre = "") => query(cluster, `${pre}select filter_action from seccomp.seccomp_filter() where syscall = 'execve' and context = 'session'`, { db: "shop", role }).split("\n").pop();
      assert.equal(own("alice"), "session->allow");
      assert.equal(own("bob"), "session->error");
      assert.equal(own("bob", "create temporary view pg_roles as select oid, 'alice'::name as rolname from pg_catalog.pg_roles; "), "session->error");
    });

    test("(d) reinstall over our own objects, by another superuser: still the bootstrap superuser's, grants kept, an earlier install's wrapper in public removed", async () => {
      // The first install (test b) was into postgres on 14, into shop on 15+; install into postgres
      // as dba, then once more, over an earlier layout's wrapper in public.
      const first = install("postgres", "dba");
      assert.equal(first.status, 0, first.stderr);
      assert.doesNotMatch(first.stderr, /NOTICE|WARNING/, "nothing to say about our own objects");
      const notBootstraps = "select count(*) from pg_proc where proname in ('filter_now', 'backend_start_ticks', 'violations_raw') and proowner <> 10";
      assert.equal(query(cluster, notBootstraps), "0", "owned by the bootstrap superuser, not by dba");
      query(cluster, "grant execute on function seccomp.seccomp_filter() to alice; grant execute on function seccomp.pg_get_seccomp_filter() to bob");
      query(cluster, `create function public.pg_get_seccomp_filter(out syscall text, out syscallnum integer, out filter_action text, out context text)
          returns setof record language sql stable security definer as $fn$ select * from "seccomp".filter_now() $fn$`);
      const again = install("postgres", "dba");
      assert.equal(again.status, 0, again.stderr);
      assert.match(again.stderr, /dropped public\.pg_get_seccomp_filter\(\) of an earlier install/);
      assert.equal(query(cluster, "select count(*) from pg_proc where pronamespace = 'public'::regnamespace and proname in ('seccomp_filter', 'pg_get_seccomp_filter', 'set_client_filter')"), "0");
      assert.equal(query(cluster, "select count(*) from pg_proc where pronamespace = 'seccomp'::regnamespace and proowner <> 10"), "0", "owned by the bootstrap superuser, not by dba");
      assert.equal(query(cluster, "select count(*) from pg_class where relnamespace = 'seccomp'::regnamespace and relowner <> 10"), "0");
      assert.equal(query(cluster, "select filter_action from seccomp.seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "alice" }), "session->allow", "alice's grant kept");
      assert.equal(query(cluster, "select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'execve' and context = 'session'", { role: "bob" }), "session->error", "bob's grant kept");
      assert.equal(psql(cluster, "select * from seccomp.seccomp_filter()", { role: "bob" }).ok, false, "and no more than that");
    });

    test("(issue 18) a violation log the server cannot read: install refuses, saying why; the view says why too", () => {
      chmodSync(logDir, 0o750); // as the unit's LogsDirectoryMode=0750 made it: root:root 0750
      try {
        const r = install("postgres");
        assert.notEqual(r.status, 0, r.stderr);
        assert.match(r.stderr, /the server cannot read the violation log \S+violations\.jsonl: .*Permission denied/);
        assert.match(r.stderr, /LogsDirectoryMode=0755/);
        const v = psql(cluster, "select count(*) from seccomp.violations");
        assert.equal(v.ok, false);
        assert.match(v.stderr, /the server cannot read the violation log[^\n]*\n(DETAIL[^\n]*\n)?HINT: [^\n]*LogsDirectoryMode=0755/);
      } finally {
        chmodSync(logDir, 0o755);
      }
    });

    test("(issue 18) installed under the root launcher, the functions find the table after a start through the pg_ctl wrapper as the server's user, with no new install", async () => {
      const inst = install("postgres");
      assert.equal(inst.status, 0, inst.stderr);
      // The wrapper as the server's user takes global lists only (per-context rules are refused there).
      const wrapperPolicy = writePolicy(withExecDeniedGlobally(readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8")), `sql-attack-wrapper-${m.major}.conf`);
      await stop(server!);
      server = undefined;
      const pgCtl = (...args: string[]) =>
        spawnSync("runuser", ["-u", cluster.user.name, "--", "env", "-u", "XDG_RUNTIME_DIR",
          `PG_SECCOMP=${process.execPath} ${BIN}`, `PG_SECCOMP_POLICY=${wrapperPolicy}`, `PG_SECCOMP_POSTGRES=${join(cluster.binDir, "postgres")}`,
          join(cluster.binDir, "pg_ctl"), "-D", cluster.dataDir, "-l", join(cluster.root, "server.log"), ...args], { encoding: "utf8", cwd: cluster.root, timeout: 120_000 });
      const started = pgCtl("-p", WRAPPER, "-w", "-t", "60", "start");
      assert.equal(started.status, 0, started.stdout + started.stderr);
      try {
        assert.ok(postmasterPid(cluster.dataDir));
        // filter_now() is what seccomp_filter() returns (and what earlier installs had too).
        assert.equal(query(cluster, "select filter_action from seccomp.filter_now() where syscall = 'execve' and context = 'session'"), "session->error");
        // seccomp_filter() is the running server's table: the wrapper-started one's, whose global
        // lists deny execve (the root-started policy allowed it there and denied it to sessions).
        const rows = psql(cluster, "select filter_action from seccomp.seccomp_filter() where syscall = 'execve' and context = 'global'");
        assert.ok(rows.ok, rows.stderr);
        assert.equal(rows.stdout.trim(), "global->error");
      } finally {
        pgCtl("stop", "-m", "fast");
      }
      // Not under pg_seccomp at all: the HINT names the command to run.
      const plain = spawnSync("runuser", ["-u", cluster.user.name, "--", join(cluster.binDir, "pg_ctl"), "-D", cluster.dataDir, "-l", join(cluster.root, "plain.log"), "-w", "start"], { encoding: "utf8", cwd: cluster.root });
      assert.equal(plain.status, 0, plain.stderr);
      try {
        const r = psql(cluster, "select count(*) from seccomp.seccomp_filter()");
        assert.equal(r.ok, false);
        assert.match(r.stderr, new RegExp(`HINT:  .*run pg_seccomp sql install -d postgres -D ${cluster.dataDir.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")}`));
      } finally {
        spawnSync("runuser", ["-u", cluster.user.name, "--", join(cluster.binDir, "pg_ctl"), "-D", cluster.dataDir, "-m", "fast", "-w", "stop"], { encoding: "utf8", cwd: cluster.root });
      }
    });
  });
}
