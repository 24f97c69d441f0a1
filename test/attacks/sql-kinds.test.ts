// Attack library: a PostgreSQL superuser with SQL only runs a program from a process that runs
// SQL but is not a client backend: a walsender with a database (replication=database), an
// autovacuum worker evaluating an expression index, a parallel worker. The policy says sessions
// may not exec (the README's rule); every one of these is a session (docs/policy.md, "What a
// session is"), so every attempt must fail, leave no trace of the program, and be logged in the
// process's own context.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";
import type { ViolationEvent } from "../../src/host/violation-event.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");
const SESSIONS_NO_EXEC = profile + "\nsession_syscall_error = '*, execve'\n";

let cluster: Cluster;
before(async () => {
  if (skip) return;
  // A naptime of 1 s: autovacuum looks at the table within seconds of the insert.
  cluster = await newCluster(["autovacuum_naptime = 1", "max_worker_processes = 8", "max_parallel_workers = 4", "max_parallel_workers_per_gather = 2"]);
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

function events(path: string): ViolationEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent);
}

/** A file the program would create (in the cluster's root, which the server's user owns). */
const marker = (name: string) => join(cluster.root, `pwned-${name}`);

test("a walsender with a database (replication=database) is a session: COPY TO PROGRAM is denied and logged", { skip }, async () => {
  const log = logFile("attack-walsender.jsonl");
  const s = await startReady(cluster, ["--policy", writePolicy(SESSIONS_NO_EXEC), "--log", log]);
  const file = marker("walsender");
  try {
    const r = psql(cluster, `copy (select 1) to program 'touch ${file}'`, { db: "dbname=postgres replication=database" });
    assert.equal(r.ok, false, "the walsender ran a program");
    assert.match(r.stderr, /terminated by signal 31|Bad system call|could not execute|Permission denied/);
    assert.equal(existsSync(file), false);
    // A physical walsender still works (replication commands only).
    const ident = psql(cluster, "IDENTIFY_SYSTEM", { db: "dbname=postgres replication=database" });
    assert.ok(ident.ok, ident.stderr);
    await waitFor(() => events(log).some((e) => e.syscall === "execve" && e.context === "walsender"), 10_000, "the walsender's denied exec in the log");
  } finally {
    await stop(s);
  }
  const e = events(log).find((x) => x.syscall === "execve" && x.context === "walsender")!;
  assert.equal(e.action, "error");
  assert.equal(e.database, "postgres", JSON.stringify(e));
});

test("an expression index's function runs in autovacuum's ANALYZE as a session: its program is denied and logged", { skip }, async () => {
  const log = logFile("attack-autovacuum.jsonl");
  const s = await startReady(cluster, ["--policy", writePolicy(SESSIONS_NO_EXEC), "--log", log]);
  const file = marker("autovacuum");
  try {
    // The program runs only in an autovacuum worker: the client's INSERT evaluates the index too.
    query(cluster, `
      create table av (x int);
      create function run_program() returns void language plpgsql volatile as $$
        begin copy (select 1) to program 'touch ${file}'; exception when others then null; end $$;
      create function idx(int) returns int language plpgsql immutable as $$
        begin
          if (select backend_type from pg_catalog.pg_stat_activity where pid = pg_catalog.pg_backend_pid()) = 'autovacuum worker' then
            perform public.run_program(); -- ANALYZE runs with a search_path of pg_catalog only
          end if;
          return $1;
        end $$;
      create index on av (idx(x));
      insert into av select generate_series(1, 1000);`);
    // Fact: autovacuum's ANALYZE evaluated the index (the program ran, or its exec was denied).
    const seen = () => existsSync(file) || events(log).some((e) => e.syscall === "execve" && e.context === "autovacuum_worker");
    await waitFor(seen, 120_000, "autovacuum's ANALYZE of the table");
    assert.equal(existsSync(file), false, "the autovacuum worker ran the program");
  } finally {
    query(cluster, "drop table if exists av; drop function if exists idx(int); drop function if exists run_program()");
    await stop(s);
  }
  const e = events(log).find((x) => x.syscall === "execve" && x.context === "autovacuum_worker")!;
  assert.equal(e.action, "error");
});

test("a parallel-safe function run by a parallel worker is a session's: its program is denied and logged", { skip }, async () => {
  const log = logFile("attack-parallel.jsonl");
  const s = await startReady(cluster, ["--policy", writePolicy(SESSIONS_NO_EXEC), "--log", log]);
  const file = marker("parallel");
  try {
    query(cluster, "create extension if not exists plperlu");
    query(cluster, `
      create function par() returns int language plperlu parallel safe as $$
        # Only in the worker (SPI would start a subtransaction, which a parallel worker may not).
        open(my $f, '<', '/proc/self/cmdline'); my $title = <$f>; close($f);
        system("touch ${file}") if $title =~ /parallel worker/;
        return 1;
      $$`);
    const force = Number(query(cluster, "show server_version_num")) >= 160000 ? "debug_parallel_query" : "force_parallel_mode";
    const r = psql(cluster, `set ${force} = on; select par()`);
    assert.ok(r.ok, r.stderr);
    await waitFor(() => existsSync(file) || events(log).some((e) => e.syscall === "execve" && e.context === "parallel_worker"), 10_000, "the parallel worker's exec");
    assert.equal(existsSync(file), false, "the parallel worker ran the program");
  } finally {
    query(cluster, "drop function if exists par()");
    await stop(s);
  }
});

test("a pinned archive_command holds against ALTER SYSTEM and pg_reload_conf()", { skip }, async () => {
  const pinned = "/bin/true pinned %p";
  // SHOW says "(disabled)" while archive_mode is off: pin that too, as a DBA would.
  const policy = writePolicy(SESSIONS_NO_EXEC + `server_setting.archive_mode = on\nserver_setting.archive_command = '${pinned}'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    assert.equal(query(cluster, "show archive_command"), pinned);
    // work_mem is the canary: once a new session sees it, the reload has been read.
    query(cluster, `alter system set archive_command = 'cp %p ${cluster.root}/stolen-%f'`);
    query(cluster, "alter system set work_mem = '7MB'");
    query(cluster, "select pg_reload_conf()");
    await waitFor(() => query(cluster, "show work_mem") === "7MB", 30_000, "the reload");
    assert.equal(query(cluster, "show archive_command"), pinned, "ALTER SYSTEM changed a pinned setting");
    assert.equal(query(cluster, "select source from pg_settings where name = 'archive_command'"), "command line");
  } finally {
    for (const sql of ["alter system reset archive_command", "alter system reset work_mem", "select pg_reload_conf()"]) query(cluster, sql);
    await stop(s);
  }
});

test("the default profile is chosen from root's inputs only: io_method = 'io_uring' in postgresql.auto.conf does not choose the io_uring profile", { skip }, () => {
  // A PostgreSQL 18 that, as one built with liburing would, reads io_method from its files
  // (postgresql.auto.conf included): the server's own configuration.
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-io-"));
  chmodSync(dir, 0o755);
  try {
    const postgres = join(dir, "postgres");
    const data = join(dir, "data");
    writeFileSync(postgres, `#!/bin/sh\ncase "$1" in --version) echo "postgres (PostgreSQL) 18.99";; -C) case "$2" in io_method) echo io_uring;; data_directory) echo ${data};; esac;; esac\nexit 0\n`, { mode: 0o755 });
    mkdirSync(data);
    writeFileSync(join(data, "PG_VERSION"), "18\n");
    writeFileSync(join(data, "postgresql.auto.conf"), "io_method = 'io_uring'\n"); // what ALTER SYSTEM writes
    const check = (args: string[]) => spawnSync(process.execPath, [BIN, "run", "--check", "--", postgres, ...args], { encoding: "utf8" });
    const r = check(["-D", data]);
    const out = r.stdout + r.stderr;
    assert.doesNotMatch(out, /-io_uring\.conf/, "the server's own file chose the io_uring profile");
    // And the server that asks for io_uring is refused rather than started half-filtered.
    assert.notEqual(r.status, 0, out);
    assert.match(r.stderr, /never postgresql\.auto\.conf/);
    // Root asks on the command line: chosen.
    assert.match(check(["-D", data, "-c", "io_method=io_uring"]).stdout, /policy: .*postgresql-18-[a-z0-9_]+-io_uring\.conf/);
    // A configuration directory root owns (Debian's /etc/postgresql/18/main, kept root's): chosen;
    // the same directory owned by the server's user: not.
    const etc = join(dir, "etc");
    mkdirSync(etc, { mode: 0o755 });
    writeFileSync(join(etc, "postgresql.conf"), `data_directory = '${data}'\nio_method = 'io_uring'\n`, { mode: 0o644 });
    assert.match(check(["-D", etc]).stdout, /policy: .*postgresql-18-[a-z0-9_]+-io_uring\.conf/);
    chownSync(join(etc, "postgresql.conf"), cluster.user.uid, cluster.user.gid);
    assert.doesNotMatch(check(["-D", etc]).stdout + "", /-io_uring\.conf/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("programs the archiver runs have lists of their own: program_syscall_*.archiver narrows archive_command's programs, the archiver's where not set", { skip }, async () => {
  const archive = join(cluster.root, "archive");
  mkdirSync(archive, { recursive: true });
  chownSync(archive, cluster.user.uid, cluster.user.gid);
  // uname(1) makes the call. A program's lists can only narrow its parent's: the archiver's
  // denials are held in the kernel from its classification on, and its children inherit them.
  const base = profile + `server_setting.archive_mode = on\nserver_setting.archive_command = 'uname > /dev/null && cp %p ${archive}/%f'\n`;
  const archived = async (policyText: string, log: string): Promise<{ archived: number; failed: number }> => {
    const s = await startReady(cluster, ["--policy", writePolicy(policyText), "--log", log]);
    try {
      // The archiver's counts survive a clean shutdown: this run's attempts are those after a reset.
      query(cluster, "select pg_catalog.pg_stat_reset_shared('archiver')");
      query(cluster, "create table if not exists wal_filler (x int); insert into wal_filler select generate_series(1, 1000)");
      query(cluster, "select pg_catalog.pg_switch_wal()");
      const counts = () => query(cluster, "select archived_count || ' ' || failed_count from pg_catalog.pg_stat_archiver").split(" ").map(Number);
      await waitFor(() => counts().some((n) => n > 0), 60_000, "the archiver's first attempt");
      const [a, f] = counts();
      return { archived: a!, failed: f! };
    } finally {
      await stop(s);
    }
  };
  const deniedLog = logFile("attack-archiver-program-denied.jsonl");
  const denied = await archived(base + "program_syscall_error.archiver = '*, uname'\n", deniedLog);
  assert.equal(denied.archived, 0, "uname ran in archive_command although the archiver's programs may not");
  assert.ok(events(deniedLog).some((e) => e.syscall === "uname" && e.context === "archiver_program" && e.action === "error"), "the program's denied call is logged in its own context");
  const plainLog = logFile("attack-archiver-program-plain.jsonl");
  const plain = await archived(base, plainLog);
  assert.ok(plain.archived > 0, JSON.stringify(plain));
  assert.ok(!events(plainLog).some((e) => e.syscall === "uname" && e.action === "error"), "uname was denied to archive_command's programs without a list saying so");
});


test("a pinned archive_command is not undone by ALTER SYSTEM SET archive_library (PostgreSQL 15+ loads it in the archiver instead)", { skip: skip || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : false) }, async () => {
  // The library a superuser wrote (COPY TO a file, lo_export): its constructor says where it ran.
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-archlib-"));
  chmodSync(dir, 0o755);
  const mark = marker("archive-library");
  rmSync(mark, { force: true });
  const src = join(dir, "evil.c");
  writeFileSync(src, `#include <stdio.h>\n__attribute__((constructor)) static void run(void) { FILE *f = fopen("${mark}", "w"); if (f) { fputs("loaded\\n", f); fclose(f); } }\n`);
  const lib = join(dir, "evil.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-o", lib, src], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  const policy = writePolicy(profile + "server_setting.archive_mode = on\nserver_setting.archive_command = '/bin/true %p'\n");
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, `alter system set archive_library = '${lib}'`);
    query(cluster, "alter system set work_mem = '9MB'");
    query(cluster, "select pg_reload_conf()");
    await waitFor(() => query(cluster, "show work_mem") === "9MB", 30_000, "the reload");
    // The archiver restarts when archive_library changes, and loads it at once.
    await waitFor(() => existsSync(mark), 10_000, "").catch(() => undefined);
    assert.equal(existsSync(mark), false, "the archiver loaded the superuser's library although archive_command is pinned");
    assert.equal(query(cluster, "show archive_library"), "", "ALTER SYSTEM chose the archiver's library although archive_command is pinned");
    assert.equal(query(cluster, "select source from pg_settings where name = 'archive_library'"), "command line");
  } finally {
    for (const sql of ["alter system reset archive_library", "alter system reset work_mem", "select pg_reload_conf()"]) query(cluster, sql);
    await stop(s);
    rmSync(dir, { recursive: true, force: true });
  }
});
