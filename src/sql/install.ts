// The SQL objects `pg_seccomp sql install` puts into a database, with no C extension, all in
// one schema (`seccomp` by default) that install creates itself, owned by the bootstrap
// superuser (OID 10), and nothing in `public` (docs/design.md, "The SQL objects"):
//   seccomp_filter(), pg_get_seccomp_filter()  pgseccomp's name and the seed's: rows for context
//                            'global' and for the calling backend's session context (its login
//                            role and database, chosen at call time), and after
//                            set_client_filter() the rows the launcher recorded (client->X);
//   set_client_filter()      returns 'OK' or raises the launcher's answer (pgseccomp's messages);
//   seccomp.violations    the supervisor's violation log, read through a SECURITY DEFINER
//                            function (the log file is root-owned, readable by the server's group)
//                            that skips any line that is not a valid record.
// With the server's data directory (-D), the rows are read at call time from the table the
// running launcher wrote (client-filter.ts, launcherTablePath), in whichever run-state directory
// that launcher used (root's, or the server's user's under the pg_ctl wrapper): a new policy or
// another start method needs a restart under `run`, not a new install. Without it, the rows of
// the policy at install time are embedded (re-run install after changing the policy).
//
// The install is hostile ground: the database's owner (a non-superuser) may have created the
// schema, look-alike functions or operators, and set search_path, role or other settings for
// the database. So the script pins search_path, becomes the bootstrap superuser, checks by
// catalog query that everything it would create is absent or already its own, and only then
// creates, in one transaction.

import { spawnSync } from "node:child_process";
import { effectiveFilterRows, type FilterRow } from "../render/effective-table.js";
import type { ContextSpec } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import type { Arch } from "../syscalls/index.js";
import { CLIENT_FILTER_KNOCK } from "../compile/compose.js";
import { clientRecordPrefix, ROOT_RUN_STATE_DIR, runStatePlaces } from "../host/run-state.js";
import { sessionVariants } from "../render/effective-table.js";

function lit(s: string | null | undefined): string {
  return s === null || s === undefined ? "NULL" : `'${s.replace(/'/g, "''")}'`;
}

/** How much of the log the SQL view reads (the newest part), and the longest line it takes. */
export const VIEW_READ_BYTES = 16 * 1024 * 1024;
export const VIEW_MAX_LINE_BYTES = 64 * 1024;

export interface InstallOptions {
  schema: string;
  policyPath: string;
  logPath?: string;
  /** The server's data directory: names the launcher's per-backend records (set_client_filter). */
  dataDir?: string;
  /**
   * The launcher's run-state directory (where its record of the server was found): /run/pg_seccomp
   * for a root launcher, the server's user's own for one started by pg_ctl. Default: ours.
   */
  stateDir?: string;
  /** The uid owning the data directory: a launcher run as that user (pg_ctl wrapper) keeps its run state in that user's directories. */
  serverUid?: number;
}

/** Our functions (name and argument types), views and tables: checked, dropped on reinstall, created. */
const OUR_FUNCTIONS = [
  "filter_now()", "backend_start_ticks()", "launcher_records()", "seccomp_filter()", "pg_get_seccomp_filter()",
  "set_client_filter(text, text, text, text, text)", "violations_raw()",
] as const;
/** pgseccomp's names: a function of one of these names in another schema is what a call not naming our schema may reach. */
const PGSECCOMP_NAMES = ["seccomp_filter", "pg_get_seccomp_filter", "set_client_filter"] as const;

/**
 * The run-state directories a launcher for this server may use, root's first: root's table
 * cannot be written by the server's user, so where both exist root's is the one taken. Then the
 * record's own directory and the server's user's (the pg_ctl wrapper's): the functions then work
 * whichever documented way the server was started, without a new install.
 */
export function launcherStateDirs(serverUid: number | undefined, recordDir: string | undefined): string[] {
  return [...new Set([ROOT_RUN_STATE_DIR, ...(recordDir ? [recordDir] : []), ...runStatePlaces(serverUid).map((p) => p.dir)])];
}


/**
 * Every kind of object a schema can hold, with its catalog: [what the message calls it, catalog,
 * alias, how it is named in the message, the owner column, the namespace column]. Types, relations,
 * functions and operators print through their reg* casts; the rest as schema.name.
 */
const SCHEMA_OBJECT_KINDS: ReadonlyArray<readonly [string, string, string, string, string, string]> = [
  ["function", "pg_proc", "p", "p.oid::pg_catalog.regprocedure", "proowner", "pronamespace"],
  ["relation", "pg_class", "c", "c.oid::pg_catalog.regclass", "relowner", "relnamespace"],
  ["type", "pg_type", "t", "t.oid::pg_catalog.regtype", "typowner", "typnamespace"],
  ["operator", "pg_operator", "o", "o.oid::pg_catalog.regoperator", "oprowner", "oprnamespace"],
  ["collation", "pg_collation", "co", "co.collname", "collowner", "collnamespace"],
  ["conversion", "pg_conversion", "cv", "cv.conname", "conowner", "connamespace"],
  ["operator family", "pg_opfamily", "f", "f.opfname", "opfowner", "opfnamespace"],
  ["text search configuration", "pg_ts_config", "tc", "tc.cfgname", "cfgowner", "cfgnamespace"],
  ["text search dictionary", "pg_ts_dict", "td", "td.dictname", "dictowner", "dictnamespace"],
];

/** The objects in schema `ns` (plpgsql variables ns, schema_name) not owned by the bootstrap superuser: (what, owner). */
function ownedObjectsQuery(): string {
  return SCHEMA_OBJECT_KINDS.map(([what, catalog, a, name, owner, nsCol]) => {
    const named = name.includes("::") ? `'${what} %s (oid %s)', ${name}` : `'${what} %I.%I (oid %s)', schema_name, ${name}`;
    return `      select pg_catalog.format(${named}, ${a}.oid) as what, ${a}.${owner} as owner\n        from pg_catalog.${catalog} ${a} where ${a}.${nsCol} = ns and ${a}.${owner} <> 10`;
  }).join("\n      union all\n");
}

/** The most the SQL reads of a backend's client-filter rows, and of the launcher's table. */
export const CLIENT_ROWS_MAX_BYTES = 1024 * 1024;
export const TABLE_MAX_BYTES = 64 * 1024 * 1024;

export function installSql(policy: Policy, arch: Arch, opts: InstallOptions): string {
  const s = opts.schema.replace(/"/g, '""');
  const schemaLit = lit(opts.schema);
  const prefixes = opts.dataDir ? launcherStateDirs(opts.serverUid, opts.stateDir).map((d) => clientRecordPrefix(opts.dataDir!, d)) : [];
  const values: string[] = [];
  const push = (role: string | undefined, database: string | undefined, rows: FilterRow[]) => {
    for (const r of rows) values.push(`(${lit(role)}, ${lit(database)}, ${lit(r.syscall)}, ${r.syscallnum}, ${lit(r.filter_action)}, ${lit(r.context)})`);
  };
  // Embedded only when the launcher's table cannot be found (no data directory given).
  if (!opts.dataDir) {
    for (const v of sessionVariants(policy)) {
      const ctx: ContextSpec = { context: "session", ...v };
      // The same rows as `show --role R --database D` prints (global's and the session's).
      push(v.role, v.database, effectiveFilterRows(policy, arch, [{ context: "global" }, ctx]));
    }
  }
  const arrayLit = (xs: readonly string[]) => `array[${xs.map(lit).join(", ")}]::text[]`;
  // What an earlier pg_seccomp (before everything moved into the schema) put into public, owned
  // by whoever installed it: dropped only when the bootstrap superuser owns it and the body is
  // exactly that one.
  const oldPublicBodies = [`select * from "${s}".filter_now()`, `select "${s}".set_client_filter(default_action, allow_list, log_list, error_list, kill_list)`];
  const reinstallHint = opts.dataDir ? `pg_seccomp sql install -d ' || pg_catalog.current_database() || ' -D ${opts.dataDir.replace(/'/g, "''")}` : "pg_seccomp sql install -d DB -D PGDATA";
  return `
-- pg_seccomp sql install: ${opts.policyPath.replace(/[\r\n]/g, " ")} (${arch}), schema ${opts.schema.replace(/[\r\n]/g, " ")}
-- Pinned for the install's own statements, whatever the role or the database sets: names
-- resolve in pg_catalog (functions and operators are never looked up in pg_temp), so no
-- look-alike function, operator or relation in another schema is taken.
set search_path = pg_catalog, pg_temp;
begin;
-- A superuser installs, as the bootstrap superuser (OID 10): it owns every object, and no
-- ALTER ROLE can take superuser from it. SET ROLE also undoes a role the database sets
-- (ALTER DATABASE ... SET role), which its owner may do.
do $install$
declare
  boot name;
begin
  if not coalesce((select r.rolsuper from pg_catalog.pg_roles r where r.rolname = session_user), false) then
    raise exception using errcode = '42501',
      message = pg_catalog.format('pg_seccomp: sql install must connect as a superuser; %I is not one', session_user),
      hint = 'connect as postgres (as root, pg_seccomp runs psql as the server''s OS user over the Unix socket: peer authentication)';
  end if;
  select r.rolname into boot from pg_catalog.pg_roles r where r.oid = 10;
  execute pg_catalog.format('set local role %I', boot);
end
$install$;

-- Held until commit: no schema is created, renamed or handed over (each takes ROW EXCLUSIVE on
-- pg_namespace) between the check below and the creation. Without it a database owner commits
-- its own schema after the check (pg_locks shows when) and install fills that schema.
-- Bounded: while install waits for it, every later CREATE SCHEMA and every session's first
-- temporary table in this database waits behind it (each needs ROW EXCLUSIVE), so an open
-- transaction holding pg_namespace (a superuser's LOCK TABLE, VACUUM FULL or REINDEX of it)
-- must make install fail, naming it, not hang the database.
set local lock_timeout = '10s';
do $lock$
begin
  lock table pg_catalog.pg_namespace in share mode;
exception when lock_not_available then
  raise exception using errcode = '55P03',
    message = pg_catalog.format('pg_seccomp: waited %s for pg_namespace, which an open transaction holds (pid %s)',
      pg_catalog.current_setting('lock_timeout'),
      coalesce((select pg_catalog.string_agg(l.pid::text, ', ' order by l.pid) from pg_catalog.pg_locks l
                 where l.locktype = 'relation' and l.relation = 'pg_catalog.pg_namespace'::pg_catalog.regclass
                   and l.granted and l.pid <> pg_catalog.pg_backend_pid()), 'unknown')),
    detail = 'install holds pg_namespace from its check to its commit, so that no schema appears in between; another transaction holds a lock on it (LOCK TABLE, VACUUM FULL or REINDEX of pg_namespace, or a schema being created at this moment)',
    hint = 'see it with: select pid, usename, state, xact_start, query from pg_stat_activity where pid in (...); end that transaction (or pg_terminate_backend(pid)), then run sql install again';
end
$lock$;

-- Before anything is created: the schema, if it exists, and everything in it must be the
-- bootstrap superuser's, and nobody else may create in it; no other role's function may carry
-- pgseccomp's names (a call that does not name the schema could reach it). Else refuse,
-- naming the object (qualified, with its OID) and its owner.
do $check$
declare
  schema_name constant text := ${schemaLit};
  old_bodies constant text[] := ${arrayLit(oldPublicBodies)};
  ns oid;
  ns_owner oid;
  ns_acl aclitem[];
  r record;
begin
  select n.oid, n.nspowner, n.nspacl into ns, ns_owner, ns_acl from pg_catalog.pg_namespace n where n.nspname = schema_name;
  if ns is not null then
    if ns_owner <> 10 then
      raise exception using errcode = '42501',
        message = pg_catalog.format('pg_seccomp: schema %I (oid %s) already exists, owned by %I', schema_name, ns, pg_catalog.pg_get_userbyid(ns_owner)),
        detail = 'sql install creates its schema and every object in it itself, owned by the bootstrap superuser: a schema another role owns could hold that role''s function bodies, run by whoever calls them',
        hint = pg_catalog.format('look at it (\\dn+ %I, \\df %I.*); if it is not yours, DROP SCHEMA %I CASCADE, or install into another schema with --schema NAME', schema_name, schema_name, schema_name);
    end if;
    for r in
${ownedObjectsQuery()}
    loop
      raise exception using errcode = '42501',
        message = pg_catalog.format('pg_seccomp: %s in schema %I is owned by %I, not by the bootstrap superuser', r.what, schema_name, pg_catalog.pg_get_userbyid(r.owner)),
        detail = 'a role that owns an object in the schema can change what it does for whoever uses it',
        hint = 'drop that object (or the schema) if it is not yours, then run sql install again';
    end loop;
    for r in select a.grantee from pg_catalog.aclexplode(ns_acl) a where a.privilege_type = 'CREATE' and a.grantee <> 10 loop
      raise exception using errcode = '42501',
        message = pg_catalog.format('pg_seccomp: schema %I grants CREATE to %s', schema_name, case when r.grantee = 0 then 'PUBLIC' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) end),
        detail = 'a role that may create in the schema can put look-alikes of its objects there',
        hint = pg_catalog.format('REVOKE CREATE ON SCHEMA %I FROM %s, then run sql install again', schema_name, case when r.grantee = 0 then 'PUBLIC' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(r.grantee)) end);
    end loop;
  end if;
  for r in
    select p.oid, p.oid::pg_catalog.regprocedure::text as fn, n.nspname, p.proname, p.proowner, p.prosrc
      from pg_catalog.pg_proc p join pg_catalog.pg_namespace n on n.oid = p.pronamespace
     where p.proname = any (${arrayLit(PGSECCOMP_NAMES)}) and p.pronamespace is distinct from ns
       and n.nspname !~ '^pg_(toast_)?temp_'  -- another session's temporary functions: never found without naming pg_temp
     order by 2, 3
  loop
    if r.proowner = 10 and r.nspname = 'public' and pg_catalog.btrim(r.prosrc) = any (old_bodies) then
      -- An earlier pg_seccomp's own wrapper: its functions now live in the schema only.
      execute pg_catalog.format('drop function %s', r.fn);
      raise notice 'pg_seccomp: dropped % of an earlier install: call %.%() (docs/deploy.md, "SQL functions")', r.fn, schema_name, r.proname;
    elsif r.proowner = 10 and exists (select from pg_catalog.pg_proc o where o.pronamespace = (select p2.pronamespace from pg_catalog.pg_proc p2 where p2.oid = r.oid)
                                            and o.proname = 'filter_now' and o.proowner = 10) then
      null;  -- another install of ours, in another schema (--schema)
    elsif r.proowner = 10 then
      raise notice 'pg_seccomp: % (oid %) is not pg_seccomp''s: a call that does not name the schema may reach it; call %.%()', r.fn, r.oid, schema_name, r.proname;
    else
      raise exception using errcode = '42501',
        message = pg_catalog.format('pg_seccomp: function %s (oid %s) exists, owned by %I', r.fn, r.oid, pg_catalog.pg_get_userbyid(r.proowner)),
        detail = pg_catalog.format('a call of %s() that does not name the schema %I could run that role''s function instead of pg_seccomp''s, with the caller''s rights', r.proname, schema_name),
        hint = pg_catalog.format('if it is not yours, DROP FUNCTION %s; on PostgreSQL 14 and older also REVOKE CREATE ON SCHEMA public FROM PUBLIC; then run sql install again', r.fn);
    end if;
  end loop;
end
$check$;
${opts.logPath ? `
-- seccomp.violations reads the log as the server's OS user (root's file, readable by the
-- server's group): refuse now rather than install a view that cannot read it.
do $log$
begin
  perform pg_catalog.pg_read_binary_file(${lit(opts.logPath)}, 0, 0, true);
exception when others then
  raise exception using errcode = '42501',
    message = pg_catalog.format('pg_seccomp: the server cannot read the violation log %s: %s', ${lit(opts.logPath)}, sqlerrm),
    detail = 'seccomp.violations reads the log as the server''s OS user: the file is root''s and readable by the server''s group, and every directory above it must let that user through',
    hint = 'with the systemd unit: LogsDirectoryMode=0755 (as contrib/systemd sets it; with 0750 the directory is root:root 0750 and closed to the server), then restart the unit; or chmod 0755 the log''s directory';
end
$log$;
` : ""}
-- Verified: the schema is absent or ours. Create it fresh, or (reinstall) keep it and replace
-- our own objects, carrying over the grants made on them.
create temporary table pg_seccomp_regrant (stmt text) on commit drop;
do $prepare$
declare
  ns oid := (select n.oid from pg_catalog.pg_namespace n where n.nspname = ${schemaLit});
begin
  if ns is null then
    execute pg_catalog.format('create schema %I', ${schemaLit});
    return;
  end if;
  if (select n.nspowner from pg_catalog.pg_namespace n where n.oid = ns) <> 10 then
    raise exception using errcode = '42501', message = pg_catalog.format('pg_seccomp: schema %I (oid %s) changed owner during the install', ${schemaLit}, ns);
  end if;
  insert into pg_temp.pg_seccomp_regrant
    select pg_catalog.format('grant %s on function %I.%I(%s) to %s', a.privilege_type, ${schemaLit}, p.proname, pg_catalog.oidvectortypes(p.proargtypes),
                             case when a.grantee = 0 then 'public' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end)
      from pg_catalog.pg_proc p cross join lateral pg_catalog.aclexplode(p.proacl) a
     where p.pronamespace = ns and a.grantee <> p.proowner
    union all
    select pg_catalog.format('grant %s on table %I.%I to %s', a.privilege_type, ${schemaLit}, c.relname,
                             case when a.grantee = 0 then 'public' else pg_catalog.quote_ident(pg_catalog.pg_get_userbyid(a.grantee)) end)
      from pg_catalog.pg_class c cross join lateral pg_catalog.aclexplode(c.relacl) a
     where c.relnamespace = ns and a.grantee <> c.relowner and c.relname in ('violations', 'filter_rows');
end
$prepare$;
-- (Quiet: in a new schema each of these says it found nothing.)
set local client_min_messages = warning;
drop view if exists "${s}".violations;
${OUR_FUNCTIONS.map((f) => `drop function if exists "${s}".${f};`).join("\n")}
drop table if exists "${s}".filter_rows;
reset client_min_messages;
create table "${s}".filter_rows (
  role text, database text,
  syscall text not null, syscallnum integer not null, filter_action text not null, context text not null
);
comment on table "${s}".filter_rows is ${lit(opts.dataDir ? `pg_seccomp: empty; the rows are read from the running launcher's table (${prefixes.map((p) => `${p}table.json`).join(", ")})` : `pg_seccomp: effective filter rows of ${opts.policyPath} (${arch}), installed by pg_seccomp sql install`)};
${values.length ? `insert into "${s}".filter_rows values\n${values.join(",\n")};` : ""}

-- Every SECURITY DEFINER function below runs with search_path = pg_catalog, pg_temp (pg_temp
-- last: a caller's temporary table or view named pg_roles is never taken) and names its
-- relations and our objects with their schema.

-- The launcher's records for this server: the prefix of its run-state files and its table, from
-- the first candidate directory whose table names this server's postmaster (root's first), or
-- nulls. The table names its postmaster, so a stale one (or another server's) is never taken.
create function "${s}".launcher_records(out prefix text, out tbl jsonb)
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
  candidates constant text[] := ${arrayLit(prefixes)};
  postmaster constant text := pg_catalog.split_part(pg_catalog.pg_read_file('postmaster.pid', 0, 256, true), E'\\n', 1);
  t jsonb;
  p text;
begin
  foreach p in array candidates loop
    begin
      t := pg_catalog.pg_read_file(p || 'table.json', 0, ${TABLE_MAX_BYTES}, true)::jsonb;
    exception when others then
      t := null;  -- missing, unreadable, not JSON: not this server's table
    end;
    if t is not null and pg_catalog.jsonb_typeof(t) = 'object' and t->>'postmasterPid' = postmaster then
      prefix := p;
      tbl := t;
      return;
    end if;
  end loop;
end
$fn$;
revoke all on function "${s}".launcher_records() from public;

-- The calling backend's filter, at call time: context 'global', and 'session' for its *login*
-- role (pg_stat_activity.usesysid of this backend: SET SESSION AUTHORIZATION and SET ROLE do not
-- change it, nor the kernel's filter) and database; after set_client_filter() the session rows
-- are the ones the launcher recorded when it installed the client filter (rows client->ACTION),
-- read from a file named by this backend's pid and start time. The policy's rows come from the
-- running launcher's table (launcher_records), or, installed without -D, from filter_rows.
create function "${s}".filter_now(
  out syscall text, out syscallnum integer, out filter_action text, out context text)
returns setof record language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
  login_role text := (select r.rolname::text from pg_catalog.pg_stat_activity a join pg_catalog.pg_roles r on r.oid = a.usesysid where a.pid = pg_catalog.pg_backend_pid());
  from_launcher constant boolean := ${opts.dataDir ? "true" : "false"};
  prefix text;
  tbl jsonb;
  variant jsonb;
  me_role text;
  me_db text;
  client jsonb;
  raw text;
begin
  if from_launcher then
    select l.prefix, l.tbl into prefix, tbl from "${s}".launcher_records() l;
    if tbl is null then
      raise exception using errcode = '55000', message = 'pg_seccomp: no filter table of this server''s launcher',
        detail = pg_catalog.format('no table naming this server''s postmaster in %s (missing, unreadable or of another server start)',
                                   pg_catalog.array_to_string(${arrayLit(prefixes.map((p) => `${p}table.json`))}, ', ')),
        hint = 'seccomp_filter() shows the filter of a server started by pg_seccomp run (as root, or by the pg_ctl wrapper). If this one was, its launcher keeps its run state elsewhere: run ${reinstallHint}';
    end if;
    if not coalesce((tbl->>'enabled')::boolean, false) then
      raise exception using errcode = '0A000', message = 'seccomp is not enabled';
    end if;
    select v into variant from pg_catalog.jsonb_array_elements(tbl->'variants') v
     where (v->>'role' is null or v->>'role' = login_role)
       and (v->>'database' is null or v->>'database' = pg_catalog.current_database()::text)
     order by (v->>'role' is not null) desc, (v->>'database' is not null) desc
     limit 1;
  else
    select r.role, r.database into me_role, me_db from "${s}".filter_rows r
     where (r.role is null or r.role = login_role) and (r.database is null or r.database = pg_catalog.current_database()::text)
     order by (r.role is not null) desc, (r.database is not null) desc limit 1;
    select pg_catalog.jsonb_build_object('rows', coalesce(pg_catalog.jsonb_agg(pg_catalog.to_jsonb(f)), '[]'::jsonb)) into variant
      from "${s}".filter_rows f where f.role is not distinct from me_role and f.database is not distinct from me_db;
  end if;
  return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', e->>'context'
                 from pg_catalog.jsonb_array_elements(variant->'rows') e where e->>'context' = 'global';
  if prefix is not null then
    begin
      raw := pg_catalog.pg_read_file(prefix || pg_catalog.pg_backend_pid() || '-' || "${s}".backend_start_ticks() || '.json', 0, ${CLIENT_ROWS_MAX_BYTES}, true);
      client := raw::jsonb;
    exception when others then
      client := null;  -- no record (no client filter), or not readable: the session's own rows
    end;
  end if;
  if client is not null and pg_catalog.jsonb_typeof(client) = 'array' then
    return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', 'session'::text
                   from pg_catalog.jsonb_array_elements(client) e;
  else
    return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', e->>'context'
                   from pg_catalog.jsonb_array_elements(variant->'rows') e where e->>'context' = 'session';
  end if;
end
$fn$;
revoke all on function "${s}".filter_now() from public;

-- This backend's start time in clock ticks (/proc/self/stat field 22), which names its records.
create function "${s}".backend_start_ticks() returns text
language sql volatile security definer parallel unsafe
set search_path = pg_catalog, pg_temp
as $fn$ select pg_catalog.split_part(pg_catalog.regexp_replace(pg_catalog.pg_read_file('/proc/self/stat', 0, 4096, false), '^.*[)] ', ''), ' ', 20) $fn$;
revoke all on function "${s}".backend_start_ticks() from public;

-- pgseccomp's name and the seed's, the same rows, in the schema only: call them qualified
-- (${opts.schema}.seccomp_filter()); see docs/deploy.md for unqualified calls. EXECUTE as
-- pgseccomp grants it: revoked from PUBLIC; GRANT EXECUTE ON FUNCTION ${opts.schema}.seccomp_filter() TO <role>.
${["seccomp_filter", "pg_get_seccomp_filter"].map((name) => `create function "${s}".${name}(
  out syscall text, out syscallnum integer, out filter_action text, out context text)
returns setof record language sql stable security definer parallel unsafe
set search_path = pg_catalog, pg_temp
as $fn$ select * from "${s}".filter_now() $fn$;
revoke all on function "${s}".${name}() from public;
`).join("")}
-- set_client_filter(): narrows the calling session, once (see src/supervisor/client-filter.ts).
-- The request goes to a spool file; the knock (an lseek to a magic offset) makes the supervisor
-- install the filter into this backend before the call returns. Its answer is read from a
-- file the launcher writes beside its table: 'OK' only when the launcher says it installed the
-- filter (a knock that merely succeeds, e.g. on a server not under pg_seccomp, is no answer).
create function "${s}".set_client_filter(
  default_action text, allow_list text, log_list text, error_list text, kill_list text)
returns text language plpgsql volatile security definer parallel unsafe
set search_path = pg_catalog, pg_temp
as $fn$
declare
  request text := pg_catalog.json_build_object('default', default_action, 'allow', allow_list, 'log', log_list,
                                    'error', error_list, 'kill', kill_list)::text;
  spool text := pg_catalog.current_setting('data_directory') || '/pg_seccomp/' || pg_catalog.pg_backend_pid() || '.json';
  prefix text := coalesce((select l.prefix from "${s}".launcher_records() l), '/nonexistent/pg_seccomp-client-');
  answer_path text := prefix || pg_catalog.pg_backend_pid() || '-' || "${s}".backend_start_ticks() || '.result.json';
  knock_error text;
  answer jsonb;
begin
${policy.clientFilter ? "" : `  -- The policy at install time leaves set_client_filter off: no knock is compiled, nothing would answer.
  raise exception using errcode = '55000', message = 'set_client_filter is not enabled in the policy',
    detail = ${lit(`${opts.policyPath} does not set set_client_filter = on`)},
    hint = 'add set_client_filter = on to the policy, restart the server under pg_seccomp run, and run pg_seccomp sql install again';
`}  execute pg_catalog.format('copy (select %L) to %L', request, spool);
  begin
    perform pg_catalog.pg_read_file('/dev/null', ${CLIENT_FILTER_KNOCK.toString()}, 1, false);
  exception when others then
    knock_error := sqlerrm;
  end;
  begin
    answer := pg_catalog.pg_read_file(answer_path, 0, 4096, true)::jsonb;
  exception when others then
    answer := null;
  end;
  if knock_error is null and answer->>'status' = 'ok' then
    return 'OK';
  end if;
  if answer is not null and answer->>'status' = 'error' and answer->>'message' is not null then
    if answer ? 'hint' and answer ? 'detail' then
      raise exception using errcode = coalesce(answer->>'sqlstate', 'P0001'), message = answer->>'message', hint = answer->>'hint', detail = answer->>'detail';
    elsif answer ? 'hint' then
      raise exception using errcode = coalesce(answer->>'sqlstate', 'P0001'), message = answer->>'message', hint = answer->>'hint';
    elsif answer ? 'detail' then
      raise exception using errcode = coalesce(answer->>'sqlstate', 'P0001'), message = answer->>'message', detail = answer->>'detail';
    else
      raise exception using errcode = coalesce(answer->>'sqlstate', 'P0001'), message = answer->>'message';
    end if;
  end if;
  raise exception using errcode = '55000', message = 'set_client_filter: the launcher gave no answer',
    detail = coalesce(knock_error, 'the knock returned without a record'),
    hint = 'set_client_filter works on a server started by pg_seccomp run with set_client_filter = on in its policy, installed with pg_seccomp sql install -D <data directory>';
end
$fn$;
revoke all on function "${s}".set_client_filter(text, text, text, text, text) from public;

-- The log's valid records as JSON text (the view below casts them). The file is hostile input
-- (whoever can write it, or a torn write): each line is checked inside its own exception block,
-- so one bad line is skipped, never fails the query; skipped lines are counted in a NOTICE.
-- Only the newest ${VIEW_READ_BYTES / (1024 * 1024)} MiB are read (the launcher rotates at that size), as
-- bytes: pg_read_file would fail the whole read on one invalid UTF-8 sequence.
create function "${s}".violations_raw() returns setof text
language plpgsql stable security definer
set search_path = pg_catalog, pg_temp
as $fn$
declare
  log_path constant text := ${lit(opts.logPath ?? "")};
  max_read constant bigint := ${VIEW_READ_BYTES};
  max_line constant integer := ${VIEW_MAX_LINE_BYTES};
  file_size bigint;
  start_at bigint;
  lines text[];
  b bytea;
  j jsonb;
  skipped bigint := 0;
  too_long bigint := 0;
begin
  if log_path = '' then return; end if;
  begin
    file_size := (pg_stat_file(log_path, true)).size;
  exception when insufficient_privilege then
    raise exception using errcode = '42501', message = pg_catalog.format('pg_seccomp: the server cannot read the violation log %s: %s', log_path, sqlerrm),
      hint = 'the log''s directory must let the server''s OS user through: with the systemd unit, LogsDirectoryMode=0755 (contrib/systemd/postgresql-seccomp@.service)';
  end;
  if file_size is null then return; end if;
  start_at := greatest(file_size - max_read, 0);
  b := pg_read_binary_file(log_path, start_at, max_read, true);
  if b is null then return; end if;
  -- encode(..., 'escape') writes NUL, high-bit bytes and backslashes as escapes and leaves
  -- newlines alone, so the bytes split into lines as text and each decodes back exactly.
  lines := string_to_array(encode(b, 'escape'), E'\\n');
  b := null;
  for i in 1 .. coalesce(array_length(lines, 1), 0) loop
    -- Read from the middle of the file: the first piece is the end of a line. The last piece
    -- has no newline: a line being written; it is taken only when it is already complete.
    continue when i = 1 and start_at > 0;
    continue when btrim(lines[i], E' \\t\\r') = '';
    begin
      b := decode(lines[i], 'escape');
      if octet_length(b) > max_line then
        too_long := too_long + 1;
        continue;
      end if;
      j := convert_from(b, 'UTF8')::jsonb;  -- invalid UTF-8, bad JSON, too deep: an error, caught below
      if jsonb_typeof(j) = 'object'
         and jsonb_typeof(j->'time') = 'string'
         and j->>'time' ~ '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?Z$'
         and jsonb_typeof(j->'pid') = 'number' and jsonb_typeof(j->'nr') = 'number'
         and jsonb_typeof(j->'process') = 'string' and jsonb_typeof(j->'context') = 'string'
         and jsonb_typeof(j->'syscall') = 'string'
         and j->>'action' in ('allow', 'log', 'launch', 'error', 'terminate', 'kill', 'trap') and jsonb_typeof(j->'action') = 'string'
         and jsonb_typeof(j->'args') = 'array'
         and coalesce(jsonb_typeof(j->'role'), 'null') in ('null', 'string')
         and coalesce(jsonb_typeof(j->'database'), 'null') in ('null', 'string')
         and coalesce(jsonb_typeof(j->'query'), 'null') in ('null', 'string')
         and coalesce(jsonb_typeof(j->'signal'), 'null') in ('null', 'string')
         and coalesce(jsonb_typeof(j->'program'), 'null') in ('null', 'string')
         and coalesce(jsonb_typeof(j->'errno'), 'null') in ('null', 'number')
         and not exists (select from jsonb_array_elements(j->'args') a where jsonb_typeof(a) <> 'string')
         -- the casts the view makes: out of range or fractional numbers, impossible dates fail here
         and (j->>'time')::timestamptz is not null
         and (j->>'pid')::integer > 0
         and (j->>'nr')::integer is not null
         and coalesce((j->>'errno')::integer, 0) between 0 and 4095
      then
        return next j::text;
      elsif i < array_length(lines, 1) then
        skipped := skipped + 1;
      end if;
    exception when others then
      if i < array_length(lines, 1) then skipped := skipped + 1; end if;
    end;
  end loop;
  if skipped > 0 then
    raise notice '%: % line(s) skipped (not a violation record)', log_path, skipped;
  end if;
  if too_long > 0 then
    raise notice '%: % line(s) skipped (longer than % bytes)', log_path, too_long, max_line;
  end if;
end
$fn$;
revoke all on function "${s}".violations_raw() from public;
create view "${s}".violations as
  select (j->>'time')::timestamptz as time, (j->>'pid')::int as pid, j->>'context' as context,
         j->>'role' as role, j->>'database' as database, j->>'syscall' as syscall,
         (j->>'nr')::int as syscallnum, j->>'action' as action, (j->>'errno')::int as errno,
         j->>'signal' as signal, j->>'process' as process, j->>'query' as query,
         array(select pg_catalog.jsonb_array_elements_text(j->'args')) as args,
         j->>'program' as program
    from (select line::jsonb as j from "${s}".violations_raw() line) l;
revoke all on "${s}".violations from public;
-- Who may read what: the filter functions as pgseccomp grants them (not to PUBLIC: grant EXECUTE
-- on ${opts.schema}.seccomp_filter() / pg_get_seccomp_filter() to a role); the violation log is for pg_monitor
-- members (GRANT pg_monitor TO dba_role), or grant the two below to a role.
grant usage on schema "${s}" to public;
revoke all on "${s}".filter_rows from public;
grant execute on function "${s}".violations_raw() to pg_monitor;
grant select on "${s}".violations to pg_monitor;
-- The grants made on the objects of an earlier install of ours, made again.
do $regrant$
declare
  g text;
begin
  for g in select r.stmt from pg_temp.pg_seccomp_regrant r loop
    execute g;
  end loop;
end
$regrant$;
commit;
`;
}

export interface PsqlAs {
  /** Run psql as this OS user (root installing for a server: peer authentication maps the OS user). */
  user?: { uid: number; gid: number; name: string };
  /** PGHOST, PGPORT for the server's Unix socket when the connection string does not say. */
  env?: Record<string, string>;
}

export function applySql(psqlPath: string, conninfo: string, sql: string, as: PsqlAs = {}): { ok: boolean; stderr: string } {
  const env = { ...process.env, ...(as.env ?? {}), ...(as.user ? { USER: as.user.name, LOGNAME: as.user.name, HOME: "/" } : {}) };
  const r = spawnSync(psqlPath, ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-f", "-"], {
    input: sql, encoding: "utf8", env, cwd: "/", ...(as.user ? { uid: as.user.uid, gid: as.user.gid } : {}),
  });
  return { ok: r.status === 0, stderr: r.stderr ?? r.error?.message ?? "" };
}

/**
 * psql's report of a failed install, as the client's own lines: the server's ERROR, DETAIL and
 * HINT (the message names the object and its owner), without psql's `psql:<stdin>:N:` prefix and
 * the PL/pgSQL CONTEXT line. A failure without a server ERROR (no connection) is kept as it came.
 */
export function describeInstallFailure(stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.replace(/^psql:<stdin>:\d+: /, ""));
  const field = (name: string) => lines.find((l) => l.startsWith(`${name}:  `))?.slice(name.length + 3);
  const error = field("ERROR");
  if (error === undefined) return stderr.trim();
  const detail = field("DETAIL");
  const hint = field("HINT");
  return [error.replace(/^pg_seccomp: /, ""), ...(detail ? [`pg_seccomp: detail: ${detail}`] : []), ...(hint ? [`pg_seccomp: hint: ${hint}`] : [])].join("\n");
}
