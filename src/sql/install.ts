// The SQL objects `pg_seccomp sql install` puts into a database, with no C extension:
//   seccomp_filter(), pg_get_seccomp_filter()  pgseccomp's name and the seed's: rows for context
//                            'global' and for the calling backend's session context (its login
//                            role and database, chosen at call time), and after
//                            set_client_filter() the rows the launcher recorded (client->X);
//   set_client_filter()      returns 'OK' or raises the launcher's answer (pgseccomp's messages);
//   seccomp.violations    the supervisor's violation log, read through a SECURITY DEFINER
//                            function (the log file is root-owned, readable by the server's group)
//                            that skips any line that is not a valid record.
// With the server's data directory (-D), the rows are read at call time from the table the
// running launcher wrote (client-filter.ts, launcherTablePath): a new policy needs a restart
// under `run`, not a new install. Without it, the rows of the policy at install time are
// embedded (re-run install after changing the policy).

import { spawnSync } from "node:child_process";
import { effectiveFilterRows, type FilterRow } from "../render/effective-table.js";
import type { ContextSpec } from "../policy/decision.js";
import type { Policy } from "../policy/policy.js";
import type { Arch } from "../syscalls/index.js";
import { CLIENT_FILTER_KNOCK } from "../compile/compose.js";
import { clientRecordPrefix, launcherTablePath } from "../host/run-state.js";
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
}

/** The most the SQL reads of a backend's client-filter rows, and of the launcher's table. */
export const CLIENT_ROWS_MAX_BYTES = 1024 * 1024;
export const TABLE_MAX_BYTES = 64 * 1024 * 1024;

export function installSql(policy: Policy, arch: Arch, opts: InstallOptions): string {
  const s = opts.schema.replace(/"/g, '""');
  const clientPrefix = opts.dataDir ? clientRecordPrefix(opts.dataDir, opts.stateDir) : "/nonexistent/pg_seccomp-client-";
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
  const tablePath = opts.dataDir ? launcherTablePath(opts.dataDir, opts.stateDir) : undefined;
  return `
begin;
create schema if not exists "${s}";
drop table if exists "${s}".filter_rows cascade;
drop function if exists "${s}".set_client_filter(text, text, text, text, text) cascade;
drop function if exists public.set_client_filter(text, text, text, text, text);
drop function if exists public.pg_get_seccomp_filter();
drop function if exists "${s}".pg_get_seccomp_filter();
create table "${s}".filter_rows (
  role text, database text,
  syscall text not null, syscallnum integer not null, filter_action text not null, context text not null
);
comment on table "${s}".filter_rows is ${lit(tablePath ? `pg_seccomp: empty; the rows are read from ${tablePath}, the running launcher's table` : `pg_seccomp: effective filter rows of ${opts.policyPath} (${arch}), installed by pg_seccomp sql install`)};
${values.length ? `insert into "${s}".filter_rows values\n${values.join(",\n")};` : ""}

-- The calling backend's filter, at call time: context 'global', and 'session' for its *login*
-- role (pg_stat_activity.usesysid of this backend: SET SESSION AUTHORIZATION and SET ROLE do not
-- change it, nor the kernel's filter) and database; after set_client_filter() the session rows
-- are the ones the launcher recorded when it installed the client filter (rows client->ACTION),
-- read from a root-owned file named by this backend's pid and start time. The policy's rows come
-- from the running launcher's table (root-owned, in a directory the server cannot write), checked
-- to belong to this server's postmaster; or, installed without -D, from filter_rows.
create or replace function "${s}".filter_now(
  out syscall text, out syscallnum integer, out filter_action text, out context text)
returns setof record language plpgsql stable security definer
set search_path = pg_catalog
as $fn$
declare
  login_role text := (select r.rolname::text from pg_stat_activity a join pg_roles r on r.oid = a.usesysid where a.pid = pg_backend_pid());
  table_path constant text := ${lit(tablePath ?? "")};
  tbl jsonb;
  variant jsonb;
  postmaster text;
  me_role text;
  me_db text;
  client jsonb;
  raw text;
begin
  if table_path <> '' then
    begin
      tbl := pg_read_file(table_path, 0, ${TABLE_MAX_BYTES}, true)::jsonb;
    exception when others then
      tbl := null;
    end;
    postmaster := split_part(pg_read_file('postmaster.pid', 0, 256, true), E'\n', 1);
    if tbl is null or jsonb_typeof(tbl) <> 'object' or tbl->>'postmasterPid' is distinct from postmaster then
      raise exception using errcode = '55000', message = 'pg_seccomp: no filter table of this server''s launcher',
        detail = format('%s is missing, unreadable or of another server start', table_path),
        hint = 'seccomp_filter() shows the filter of a server started by pg_seccomp run, with its data directory';
    end if;
    if not coalesce((tbl->>'enabled')::boolean, false) then
      raise exception using errcode = '0A000', message = 'seccomp is not enabled';
    end if;
    select v into variant from jsonb_array_elements(tbl->'variants') v
     where (v->>'role' is null or v->>'role' = login_role)
       and (v->>'database' is null or v->>'database' = current_database()::text)
     order by (v->>'role' is not null) desc, (v->>'database' is not null) desc
     limit 1;
  else
    select r.role, r.database into me_role, me_db from "${s}".filter_rows r
     where (r.role is null or r.role = login_role) and (r.database is null or r.database = current_database()::text)
     order by (r.role is not null) desc, (r.database is not null) desc limit 1;
    select jsonb_build_object('rows', coalesce(jsonb_agg(to_jsonb(f)), '[]'::jsonb)) into variant
      from "${s}".filter_rows f where f.role is not distinct from me_role and f.database is not distinct from me_db;
  end if;
  return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', e->>'context'
                 from jsonb_array_elements(variant->'rows') e where e->>'context' = 'global';
  begin
    raw := pg_read_file(${lit(clientPrefix)} || pg_backend_pid() || '-' || "${s}".backend_start_ticks() || '.json', 0, ${CLIENT_ROWS_MAX_BYTES}, true);
    client := raw::jsonb;
  exception when others then
    client := null;  -- no record (no client filter), or not readable: the session's own rows
  end;
  if client is not null and jsonb_typeof(client) = 'array' then
    return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', 'session'::text
                   from jsonb_array_elements(client) e;
  else
    return query select e->>'syscall', (e->>'syscallnum')::integer, e->>'filter_action', e->>'context'
                   from jsonb_array_elements(variant->'rows') e where e->>'context' = 'session';
  end if;
end
$fn$;
revoke all on function "${s}".filter_now() from public;

-- This backend's start time in clock ticks (/proc/self/stat field 22), which names its records.
create or replace function "${s}".backend_start_ticks() returns text
language sql volatile security definer parallel unsafe
set search_path = pg_catalog
as $fn$ select split_part(regexp_replace(pg_read_file('/proc/self/stat', 0, 4096, false), '^.*[)] ', ''), ' ', 20) $fn$;
revoke all on function "${s}".backend_start_ticks() from public;

-- pgseccomp's name and the seed's, the same rows. EXECUTE as pgseccomp grants it: revoked from
-- PUBLIC; GRANT EXECUTE ON FUNCTION seccomp_filter() TO <role> (and pg_get_seccomp_filter()).
${["seccomp_filter", "pg_get_seccomp_filter"].map((name) => `create or replace function public.${name}(
  out syscall text, out syscallnum integer, out filter_action text, out context text)
returns setof record language sql stable security definer parallel unsafe
set search_path = pg_catalog
as $fn$ select * from "${s}".filter_now() $fn$;
revoke all on function public.${name}() from public;
`).join("")}
-- set_client_filter(): narrows the calling session, once (see src/launcher/client-filter.ts).
-- The request goes to a spool file; the knock (an lseek to a magic offset) makes the supervisor
-- install the filter into this backend before the call returns. Its answer is read from a
-- root-owned file the server cannot write: 'OK' only when the launcher says it installed the
-- filter (a knock that merely succeeds, e.g. on a server not under pg_seccomp, is no answer).
create or replace function "${s}".set_client_filter(
  default_action text, allow_list text, log_list text, error_list text, kill_list text)
returns text language plpgsql volatile security definer parallel unsafe
set search_path = pg_catalog
as $fn$
declare
  request text := json_build_object('default', default_action, 'allow', allow_list, 'log', log_list,
                                    'error', error_list, 'kill', kill_list)::text;
  spool text := current_setting('data_directory') || '/pg_seccomp/' || pg_backend_pid() || '.json';
  answer_path text := ${lit(clientPrefix)} || pg_backend_pid() || '-' || "${s}".backend_start_ticks() || '.result.json';
  knock_error text;
  answer jsonb;
begin
${policy.clientFilter ? "" : `  -- The policy at install time leaves set_client_filter off: no knock is compiled, nothing would answer.
  raise exception using errcode = '55000', message = 'set_client_filter is not enabled in the policy',
    detail = ${lit(`${opts.policyPath} does not set set_client_filter = on`)},
    hint = 'add set_client_filter = on to the policy, restart the server under pg_seccomp run, and run pg_seccomp sql install again';
`}  execute format('copy (select %L) to %L', request, spool);
  begin
    perform pg_read_file('/dev/null', ${CLIENT_FILTER_KNOCK.toString()}, 1, false);
  exception when others then
    knock_error := sqlerrm;
  end;
  begin
    answer := pg_read_file(answer_path, 0, 4096, true)::jsonb;
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
create or replace function public.set_client_filter(
  default_action text, allow_list text, log_list text, error_list text, kill_list text)
returns text language sql volatile parallel unsafe
as $fn$ select "${s}".set_client_filter(default_action, allow_list, log_list, error_list, kill_list) $fn$;
revoke all on function public.set_client_filter(text, text, text, text, text) from public;

-- The log's valid records as JSON text (the view below casts them). The file is hostile input
-- (whoever can write it, or a torn write): each line is checked inside its own exception block,
-- so one bad line is skipped, never fails the query; skipped lines are counted in a NOTICE.
-- Only the newest ${VIEW_READ_BYTES / (1024 * 1024)} MiB are read (the launcher rotates at that size), as
-- bytes: pg_read_file would fail the whole read on one invalid UTF-8 sequence.
create or replace function "${s}".violations_raw() returns setof text
language plpgsql stable security definer
set search_path = pg_catalog
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
  file_size := (pg_stat_file(log_path, true)).size;
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
create or replace view "${s}".violations as
  select (j->>'time')::timestamptz as time, (j->>'pid')::int as pid, j->>'context' as context,
         j->>'role' as role, j->>'database' as database, j->>'syscall' as syscall,
         (j->>'nr')::int as syscallnum, j->>'action' as action, (j->>'errno')::int as errno,
         j->>'signal' as signal, j->>'process' as process, j->>'query' as query,
         array(select jsonb_array_elements_text(j->'args')) as args
    from (select line::jsonb as j from "${s}".violations_raw() line) l;
revoke all on "${s}".violations from public;
-- Who may read what: the filter functions as pgseccomp grants them (not to PUBLIC: grant EXECUTE
-- on seccomp_filter() / pg_get_seccomp_filter() to a role); the violation log is for pg_monitor
-- members (GRANT pg_monitor TO dba_role), or grant the two below to a role.
grant usage on schema "${s}" to public;
revoke all on "${s}".filter_rows from public;
grant execute on function "${s}".violations_raw() to pg_monitor;
grant select on "${s}".violations to pg_monitor;
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
