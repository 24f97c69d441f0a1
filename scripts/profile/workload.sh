#!/usr/bin/env bash
# A broad PostgreSQL workload for learning and checking starter profiles: what PostgreSQL does,
# not what a demo does. Runs against the server at PGHOST/PGPORT as PGUSER (a superuser).
#
# Needs: PGBIN (the server's bin directory, with psql, pgbench, pg_isready and pg_basebackup; any
# major's clients work, src/postgres/embedded.ts links Debian's beside the embedded builds), WORKDIR (a scratch directory the server's OS user
# can write, for COPY files, a tablespace, a base backup and a standby). The server must run
# with the settings in server.conf beside this script (archive, logical WAL, prepared
# transactions, pg_stat_statements). Set STANDBY_LAUNCHER to a command prefix to start the
# standby under pg_seccomp (e.g. "pg_seccomp run --policy P --"); by default it runs plain.
set -euo pipefail
: "${PGBIN:?set PGBIN}" "${WORKDIR:?set WORKDIR}" "${PGHOST:?}" "${PGPORT:?}"
export PGUSER=${PGUSER:-postgres} PGDATABASE=postgres
psql() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
step() { echo "workload: $*" >&2; }
as_server() { if [ "$(id -u)" = 0 ]; then runuser -u "${SERVER_USER:-postgres}" -- "$@"; else "$@"; fi; }

step "pgbench: init, TPC-B-like, select-only, connect per transaction, prepared"
"$PGBIN/pgbench" -i -s 4 -q
"$PGBIN/pgbench" -c 4 -j 2 -T 5 >/dev/null
"$PGBIN/pgbench" -c 4 -j 2 -T 3 -S >/dev/null
"$PGBIN/pgbench" -c 2 -j 2 -T 3 -S -C >/dev/null
"$PGBIN/pgbench" -c 2 -j 2 -T 3 -M prepared >/dev/null
# Over TCP as well as the Unix socket (when the server listens on loopback).
"$PGBIN/pgbench" -h 127.0.0.1 -c 2 -j 2 -T 2 -S -C >/dev/null 2>&1 || echo "workload: (no TCP listener: skipped the TCP run)" >&2

step "maintenance: VACUUM (FULL), ANALYZE, CHECKPOINT, parallel CREATE INDEX, CLUSTER, REINDEX"
psql <<'SQL'
vacuum full pgbench_accounts;
vacuum (analyze, verbose off) pgbench_history;
checkpoint;
set max_parallel_maintenance_workers = 2;
create index on pgbench_accounts (abalance);
cluster pgbench_branches using pgbench_branches_pkey;
reindex table pgbench_tellers;
SQL

step "COPY to and from files and a program"
psql <<SQL
copy pgbench_branches to '$WORKDIR/branches.csv' with (format csv);
create table branches_copy (like pgbench_branches);
copy branches_copy from '$WORKDIR/branches.csv' with (format csv);
copy (select 1) to program 'cat > /dev/null';
copy branches_copy from program 'cat $WORKDIR/branches.csv' with (format csv);
SQL

step "sorts and hashes spilling to disk, parallel query, temp tables"
psql <<'SQL'
set work_mem = '64kB';
select count(*) from (select * from pgbench_accounts order by filler desc, aid) s;
select count(distinct filler) from pgbench_accounts;
select count(*) from pgbench_accounts a join pgbench_accounts b using (aid);
set parallel_setup_cost = 0; set parallel_tuple_cost = 0; set min_parallel_table_scan_size = 0;
set max_parallel_workers_per_gather = 2;
select count(*), sum(abalance) from pgbench_accounts;
create temp table t as select g, md5(g::text) from generate_series(1, 200000) g;
create index on t (md5);
select count(*) from t where md5 like 'ab%';
SQL

step "large objects, prepared transactions, LISTEN/NOTIFY, advisory locks, plpgsql"
psql <<'SQL'
select lo_unlink(lo_from_bytea(0, repeat('x', 100000)::bytea));
begin; insert into branches_copy values (9999, 0, 'p'); prepare transaction 'pt1'; commit prepared 'pt1';
listen ch; notify ch, 'hello'; unlisten ch;
select pg_advisory_lock(42); select pg_advisory_unlock(42);
do $$ declare i int; begin for i in 1..1000 loop perform i; end loop; end $$;
create function f(int) returns int language plpgsql as $$ begin return $1 + 1; end $$;
select f(41);
SQL

step "tablespace"
mkdir -p "$WORKDIR/ts"
[ "$(id -u)" = 0 ] && chown "${SERVER_USER:-postgres}" "$WORKDIR/ts"
psql -c "create tablespace ts location '$WORKDIR/ts'"
psql -c "create table in_ts (a int) tablespace ts" -c "insert into in_ts select generate_series(1, 1000)" -c "drop table in_ts" -c "drop tablespace ts"

step "contrib: pg_stat_statements, pgcrypto, file_fdw, dblink, postgres_fdw"
psql <<SQL
create extension if not exists pg_stat_statements;
select count(*) >= 0 from pg_stat_statements;
create extension pgcrypto; select digest('x', 'sha256'), gen_random_uuid(), crypt('pw', gen_salt('bf', 4));
create extension file_fdw; create server files foreign data wrapper file_fdw;
create foreign table branches_file (bid int, bbalance int, filler text) server files options (filename '$WORKDIR/branches.csv', format 'csv');
select count(*) from branches_file;
create extension dblink; select * from dblink('host=$PGHOST port=$PGPORT dbname=postgres user=$PGUSER', 'select 1') as t(a int);
create extension postgres_fdw;
create server self foreign data wrapper postgres_fdw options (host '$PGHOST', port '$PGPORT', dbname 'postgres');
create user mapping for current_user server self options (user '$PGUSER');
create foreign table remote_branches (bid int, bbalance int) server self options (table_name 'pgbench_branches');
select count(*) from remote_branches;
SQL

step "logical replication (publication and a subscription to this server)"
psql -c "create database sub"
psql -c "create publication pub for table pgbench_branches"
psql -c "select pg_create_logical_replication_slot('subslot', 'pgoutput')"
psql -d sub -c "create table pgbench_branches (bid int primary key, bbalance int, filler char(88))"
psql -d sub -c "create subscription s connection 'host=$PGHOST port=$PGPORT dbname=postgres user=$PGUSER' publication pub with (create_slot = false, slot_name = 'subslot')"
for _ in $(seq 50); do
  [ "$(psql -At -d sub -c 'select count(*) from pgbench_branches')" -gt 0 ] && break
  sleep 0.2
done
psql -d sub -c "alter subscription s disable" -c "alter subscription s set (slot_name = none)" -c "drop subscription s"
# The walsender of the disabled subscription lets go of the slot a moment later.
for _ in $(seq 100); do
  [ "$(psql -At -c "select count(*) from pg_replication_slots where slot_name = 'subslot' and active")" = 0 ] && break
  sleep 0.2
done
psql -c "select pg_drop_replication_slot('subslot')"
psql -c "drop publication pub" -c "drop database sub"

step "a base backup and a streaming standby"
rm -rf "$WORKDIR/standby"
server_major=$(psql -At -c "select current_setting('server_version_num')::int / 10000")
client_major=$("$PGBIN/pg_basebackup" --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
if [ "$client_major" -ge "$server_major" ]; then
  # pg_basebackup: the walsender's BASE_BACKUP.
  as_server "$PGBIN/pg_basebackup" -h "$PGHOST" -p "$PGPORT" -U "$PGUSER" -D "$WORKDIR/standby" -X stream -c fast -R
else
  # pg_basebackup refuses a newer server (the embedded builds of later majors come without
  # one; Debian's is older): a low-level backup over SQL, a copy as the server's user, and a
  # physical slot that keeps the WAL the standby streams from.
  step "(pg_basebackup $client_major cannot back up PostgreSQL $server_major: SQL backup and a copy)"
  primary_data=$(psql -At -c "show data_directory")
  psql -c "select pg_create_physical_replication_slot('workload_standby', true)" >/dev/null
  as_server mkdir -m 700 "$WORKDIR/standby"
  if [ "$server_major" -ge 15 ]; then start="select pg_backup_start('standby', true)"; stop="select labelfile from pg_backup_stop(true)";
  else start="select pg_start_backup('standby', true, false)"; stop="select labelfile from pg_stop_backup(false, true)"; fi
  copy="tar -C $primary_data --exclude=./pg_wal/* --exclude=./postmaster.pid --exclude=./postmaster.opts -cf - . | tar -C $WORKDIR/standby -xf -"
  [ "$(id -u)" = 0 ] && copy="runuser -u ${SERVER_USER:-postgres} -- sh -c '$copy'"
  psql -At <<SQL >/dev/null
$start;
\\! $copy
\\o $WORKDIR/backup_label
$stop;
\\o
SQL
  cp "$WORKDIR/backup_label" "$WORKDIR/standby/backup_label"
  as_server touch "$WORKDIR/standby/standby.signal"
  {
    echo "primary_conninfo = 'host=$PGHOST port=$PGPORT user=$PGUSER dbname=postgres'"
    echo "primary_slot_name = 'workload_standby'"
    # PostgreSQL 17+: a slot sync worker on the standby.
    [ "$server_major" -ge 17 ] && { echo "sync_replication_slots = on"; echo "hot_standby_feedback = on"; }
  } >> "$WORKDIR/standby/postgresql.auto.conf"
  [ "$(id -u)" = 0 ] && chown "${SERVER_USER:-postgres}" "$WORKDIR/standby/backup_label" "$WORKDIR/standby/postgresql.auto.conf"
fi
# The standby's port: STANDBY_PORT, else the first free one after the primary's (a TCP connect
# that succeeds means the port is taken).
standby_port=${STANDBY_PORT:-$((PGPORT + 1))}
if [ -z "${STANDBY_PORT:-}" ]; then
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$standby_port") 2>/dev/null || break
    standby_port=$((standby_port + 1))
  done
fi
echo "port = $standby_port" >> "$WORKDIR/standby/postgresql.conf"
echo "archive_mode = off" >> "$WORKDIR/standby/postgresql.conf"
as_server ${STANDBY_LAUNCHER:-} "$PGBIN/postgres" -D "$WORKDIR/standby" > "$WORKDIR/standby.log" 2>&1 &
standby=$!
for _ in $(seq 100); do "$PGBIN/pg_isready" -q -p "$standby_port" && break; sleep 0.2; done
if ! [ -e "$WORKDIR/standby/postmaster.pid" ]; then
  echo "the standby did not start; its log:" >&2
  tail -n 40 "$WORKDIR/standby.log" >&2
  exit 1
fi
psql -c "create table repl_check as select 1 as a" -c "select pg_switch_wal()"
for _ in $(seq 50); do
  psql -p "$standby_port" -At -c "select count(*) from repl_check" 2>/dev/null | grep -q 1 && break
  sleep 0.2
done
psql -c "drop table repl_check"
if [ "$server_major" -ge 17 ] && ! [ "$client_major" -ge "$server_major" ]; then
  # Give the standby's slot sync worker time to start and sync once.
  for _ in $(seq 50); do
    psql -p "$standby_port" -At -c "select 1 from pg_stat_activity where backend_type = 'slotsync worker'" 2>/dev/null | grep -q 1 && break
    sleep 0.2
  done
  sleep 1
  step "standby processes: $(psql -p "$standby_port" -At -c "select string_agg(distinct backend_type, ', ') from pg_stat_activity" 2>&1)"
fi
kill -INT "$(head -1 "$WORKDIR/standby/postmaster.pid")"; wait "$standby" || true
psql -At -c "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = 'workload_standby'" >/dev/null

step "archive, reload, statistics reset"
psql -c "select pg_switch_wal()" -c "select pg_reload_conf()" -c "select pg_stat_reset()"
sleep 1
step "done"
