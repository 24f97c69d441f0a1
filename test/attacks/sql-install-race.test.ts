// Attack on `pg_seccomp sql install` by the database's owner (a non-superuser), racing the
// install: `$check$` reads pg_namespace and finds no schema `seccomp`; the statements after it
// ($prepare$) read pg_namespace again in a new snapshot, and when the schema is there by then
// they create our objects in it, without checking its owner again. The owner creates the schema
// in an open transaction before install starts (install's check does not see it), watches
// pg_locks (open to every role) for the installer's first AccessExclusiveLock in the database
// (its temporary table, created right after the check) and commits at once. The schema is then the attacker's:
// as its owner it drops our seccomp_filter() and puts its own there, which a superuser's
// documented call `seccomp.seccomp_filter()` runs with the superuser's rights.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { join } from "node:path";
import { createCluster, destroyCluster, query, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, startReady, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { majors } from "../support/majors.js";
import { readFileSync } from "node:fs";
import { repoPath } from "../support/paths.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip();

for (const m of majors().filter((x) => x.major === 15)) {
  describe(`sql install raced by the database's owner, PostgreSQL ${m.major}`, { skip: skip || m.skip }, () => {
    let cluster: Cluster;
    let server: RunningServer | undefined;

    before(async () => {
      if (skip || m.skip) return;
      cluster = await createCluster({ binDir: m.binDir! });
      const profile = readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8");
      server = await startReady(cluster, ["--policy", writePolicy(profile, `sql-race-${m.major}.conf`)]);
      query(cluster, "create role mallory login");
      query(cluster, "create database shop owner mallory");
    });
    after(async () => {
      if (server) await stop(server);
      if (cluster) destroyCluster(cluster);
    });

    test("the schema the owner commits between install's check and its creation is never used: install refuses or the schema is the bootstrap superuser's", async () => {
      const env = { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) };
      const conninfo = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=shop`;
      let owner = "-";
      // The race is the attacker's to retry: a lost round leaves nothing (install fails, or its schema wins).
      for (let round = 0; round < 10 && owner !== "mallory"; round++) {
        query(cluster, "drop schema if exists seccomp cascade", { db: "shop" });
        // Created uncommitted; committed as soon as another backend takes an AccessExclusiveLock here.
        const racer = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-U", "mallory", "-d", "shop", "-c", `do $$
          declare t timestamptz := clock_timestamp();
          begin
            create schema seccomp;
            loop
              exit when exists (select from pg_catalog.pg_locks l where l.locktype = 'relation' and l.mode = 'AccessExclusiveLock'
                                  and l.database = (select oid from pg_catalog.pg_database where datname = pg_catalog.current_database()) and l.pid <> pg_backend_pid());
              exit when clock_timestamp() > t + interval '20 s';
            end loop;
            commit;
          end $$`], { env, stdio: "ignore" });
        const racerDone = new Promise<void>((resolve) => racer.on("exit", () => resolve()));
        await new Promise((r) => setTimeout(r, 500));
        const r = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conninfo, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8" });
        await racerDone;
        owner = query(cluster, "select coalesce((select pg_get_userbyid(nspowner) from pg_namespace where nspname = 'seccomp'), '-')", { db: "shop" });
        const installed = query(cluster, "select count(*) from pg_proc where proname = 'filter_now'", { db: "shop" });
        if (r.status !== 0) assert.equal(installed, "0", "a failed install leaves nothing");
        if (owner === "mallory" && installed !== "0") {
          // What the schema's owner then does: replaces our function with its own, which the
          // superuser's documented call runs with the superuser's rights.
          query(cluster, `drop function seccomp.seccomp_filter();
            create function seccomp.seccomp_filter(out syscall text, out syscallnum integer, out filter_action text, out context text)
              returns setof record language plpgsql as $f$ begin execute 'alter role mallory superuser'; return; end $f$`, { db: "shop", role: "mallory" });
          query(cluster, "select count(*) from seccomp.seccomp_filter()", { db: "shop" });
          const superuser = query(cluster, "select rolsuper from pg_roles where rolname = 'mallory'");
          assert.fail(`round ${round}: install put our functions into schema seccomp, owned by mallory (install exit ${r.status}); mallory superuser after the DBA's call: ${superuser}`);
        }
        if (owner === "mallory") owner = "-";  // lost this round: the install failed on the schema
      }
    });

    test("a transaction left open holding pg_namespace makes install fail within its lock timeout, naming the pid: install never hangs the database", async () => {
      const env = { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) };
      query(cluster, "drop schema if exists seccomp cascade", { db: "shop" });
      // A superuser's transaction left open with a lock on pg_namespace (LOCK TABLE; VACUUM FULL
      // and REINDEX hold it too, only for their own time).
      const holder = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-U", "postgres", "-d", "shop", "-c", "begin; lock table pg_catalog.pg_namespace in row exclusive mode; select pg_sleep(60); commit;"], { env, stdio: "ignore" });
      const holderDone = new Promise<void>((resolve) => holder.on("exit", () => resolve()));
      try {
        await waitFor(() => query(cluster, "select count(*) from pg_locks l join pg_class c on c.oid = l.relation where c.relname = 'pg_namespace' and l.mode = 'RowExclusiveLock' and l.granted", { db: "shop" }) !== "0", 10_000, "the holder's lock");
        const holderPid = query(cluster, "select pid from pg_stat_activity where query like 'begin; lock table pg_catalog.pg_namespace%'", { db: "shop" });
        const conninfo = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=shop`;
        const t0 = Date.now();
        const r = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conninfo, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8", timeout: 60_000 });
        process.stderr.write(`# sql install gave up after ${Date.now() - t0} ms\n`);
        assert.notEqual(r.status, 0, r.stdout);
        assert.equal(r.signal, null, "install ended by itself (its lock timeout), not by the test's timeout");
        assert.match(r.stderr, new RegExp(`waited 10s for pg_namespace, which an open transaction holds \\(pid ${holderPid}\\)`));
        assert.match(r.stderr, /pg_seccomp: hint: .*pg_terminate_backend/);
        assert.doesNotMatch(r.stderr, /^\s+at /m, "no stack trace");
        assert.equal(query(cluster, "select count(*) from pg_proc where proname = 'filter_now'", { db: "shop" }), "0", "nothing installed");
      } finally {
        query(cluster, "select pg_terminate_backend(pid) from pg_stat_activity where query like 'begin; lock table pg_catalog.pg_namespace%'", { db: "shop" });
        await holderDone;
      }
      const r = spawnSync(process.execPath, [BIN, "sql", "install", "-d", `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=shop`, "-D", cluster.dataDir, "--arch", hostArch()], { encoding: "utf8" });
      assert.equal(r.status, 0, r.stderr);
    });
  });
}
