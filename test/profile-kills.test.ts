// Issue 17: nothing a healthy server or the programs it runs can reach is killed by a bundled
// profile. For every major (Debian's 15, the embedded 14, 16, 17 and 18), one cluster under its
// bundled profile as shipped (default error):
// - unix_socket_group set: the postmaster chowns its socket, and the server starts;
// - archive_command with each compressor in the form that writes a named file (and so keeps the
//   owner with fchown/chown): gzip -f, zstd -o, lz4, xz -f, bzip2 -f, and cp -p / cp -a, and on 15
//   pgBackRest's archive-push: one WAL switch archived by each, pg_stat_archiver.failed_count stays 0;
// - restore_command with each of them (zstd -d -o %p, ..., pgbackrest archive-get): a copy of the cluster taken before the
//   switches recovers from that archive under the profile and has every row;
// - dblink over TCP with a KEYRING: Kerberos credential cache (KRB5_CONFIG), gssencmode=disable
//   and the default (prefer: libpq asks GSSAPI for credentials, and Debian's libkrb5 reads the
//   kernel keyring with keyctl);
// - 15 with postgresql-plperl-15: chown in plperlu (owner unchanged).
// Nothing may be killed, and nothing denied: no error, trap or kill entry in the violation log.
// 15 runs every compressor; the others run zstd, gzip and cp -a (the programs are the same
// binaries on every major; what differs per major is the profile, and chown/fchown is what they
// share) to keep the suite's time down.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, freePort, postmasterPid, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { integrationSkip, logFile, startReady, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { majors } from "./support/majors.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();

interface Archiver {
  name: string;
  /** The program that must be installed. */
  tool: string;
  /** archive_command, with A for the archive directory. */
  archive: string;
  /** The file it leaves for segment %f in A (none: pgBackRest keeps its own repository). */
  suffix?: string;
}

const ARCHIVERS: Archiver[] = [
  { name: "gzip", tool: "gzip", archive: "cp %p A/%f && gzip -f A/%f", suffix: ".gz" },
  { name: "zstd", tool: "zstd", archive: "zstd -q -f %p -o A/%f.zst", suffix: ".zst" },
  { name: "lz4", tool: "lz4", archive: "lz4 -q -f %p A/%f.lz4", suffix: ".lz4" },
  { name: "xz", tool: "xz", archive: "cp %p A/%f && xz -f A/%f", suffix: ".xz" },
  { name: "bzip2", tool: "bzip2", archive: "cp %p A/%f && bzip2 -f A/%f", suffix: ".bz2" },
  { name: "cp -p", tool: "cp", archive: "cp -p %p A/%f", suffix: "" },
  { name: "cp -a", tool: "cp", archive: "cp -a %p A/%f", suffix: "" },
];

/** pgBackRest (Debian's 2.45 knows PostgreSQL up to 15): archive-push into a repository, archive-get back. */
const pgbackrest = (conf: string) => `pgbackrest --config=${conf} --stanza=t`;

/** restore_command for an archive of all of them: each segment decompressed by the tool that wrote it, into %p (a named file: fchown again); else pgBackRest's archive-get, or a failure. */
const restoreCommand = (fallback: string) =>
  "f=A/%f; if [ -f $f.zst ]; then zstd -q -d -f $f.zst -o %p; elif [ -f $f.lz4 ]; then lz4 -q -d -f $f.lz4 %p; " +
  "elif [ -f $f.xz ]; then cp $f.xz %p.xz && xz -d -f %p.xz; elif [ -f $f.bz2 ]; then cp $f.bz2 %p.bz2 && bzip2 -d -f %p.bz2; " +
  "elif [ -f $f.gz ]; then cp $f.gz %p.gz && gzip -d -f %p.gz; elif [ -f $f ]; then cp -p $f %p; else " + fallback + "; fi";

const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

/** The violation log's denials and kills (error, trap, kill), as text. */
function denials(log: string): string[] {
  if (!existsSync(log)) return [];
  return readFileSync(log, "utf8").split("\n").filter(Boolean).filter((l) => ["error", "trap", "kill"].includes((JSON.parse(l) as { action: string }).action));
}

/** What a kill looks like in the server's log (SIGSYS is signal 31; a killed program exits 159). */
const KILLED = /terminated by signal 31|exit code 159|Bad system call/;

/** Starts the cluster under the profile with KRB5_CONFIG in the server's environment (run passes its own on). */
async function startWithKrb5(c: Cluster, policy: string, log: string, krb5: string): Promise<RunningServer> {
  const before = process.env.KRB5_CONFIG;
  process.env.KRB5_CONFIG = krb5;
  try {
    return await startReady(c, ["--policy", policy, "--log", log]);
  } finally {
    if (before === undefined) delete process.env.KRB5_CONFIG;
    else process.env.KRB5_CONFIG = before;
  }
}

for (const m of majors()) {
  const full = m.major === 15;
  const withPgbackrest = full && has("pgbackrest");
  const archivers = ARCHIVERS.filter((a) => (full || ["gzip", "zstd", "cp -a"].includes(a.name)) && has(a.tool));
  describe(`PostgreSQL ${m.major} under its bundled profile: nothing reachable is killed`, { skip: skip || m.skip }, () => {
    test(`unix_socket_group, archive and restore with ${[...archivers.map((a) => a.name), ...(withPgbackrest ? ["pgbackrest"] : [])].join(", ")}, dblink with a KEYRING: cache${full ? ", plperlu chown" : ""}`, { timeout: 300_000 }, async () => {
      const t0 = Date.now();
      const probe = await createCluster({ binDir: m.binDir! });
      const user = probe.user;
      destroyCluster(probe);
      const group = spawnSync("getent", ["group", String(user.gid)], { encoding: "utf8" }).stdout.split(":")[0]!;
      assert.ok(group, `the group of ${user.name}`);
      const archiveDir = (c: Cluster) => join(c.root, "archive");
      const cluster = await createCluster({
        binDir: m.binDir!,
        conf: [
          `unix_socket_group = '${group}'`,
          "unix_socket_permissions = 0770",
          "listen_addresses = '127.0.0.1'",
          "wal_level = replica",
          "archive_mode = on",
          "archive_command = 'true'",
        ],
      });
      const A = archiveDir(cluster);
      mkdirSync(A);
      chownSync(A, user.uid, user.gid);
      const policy = writePolicy(readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8"), `kills-${m.major}.conf`);
      const krb5 = writePolicy("[libdefaults]\n    default_ccache_name = KEYRING:persistent:%{uid}\n", `krb5-${m.major}.conf`);
      const log = logFile(`kills-${m.major}.jsonl`);
      const copy = join(cluster.root, "copy");
      const brConf = join(cluster.root, "pgbackrest.conf");
      if (withPgbackrest) {
        writeFileSync(brConf, `[global]\nrepo1-path=${cluster.root}/repo\nlock-path=${cluster.root}/pgbackrest-lock\nlog-level-file=off\ncompress-type=zst\n` +
          `[t]\npg1-path=${cluster.dataDir}\npg1-port=${cluster.port}\npg1-socket-path=${cluster.socketDir}\n`);
        chownSync(brConf, user.uid, user.gid);
        archivers.push({ name: "pgbackrest", tool: "pgbackrest", archive: `${pgbackrest(brConf)} archive-push %p` });
      }
      const servers: RunningServer[] = [];
      try {
        // 1. unix_socket_group: the postmaster chowns its socket (it was killed in chown).
        let s = await startWithKrb5(cluster, policy, log, krb5);
        servers.push(s);
        assert.equal(statSync(join(cluster.socketDir, `.s.PGSQL.${cluster.port}`)).gid, user.gid);
        query(cluster, "create table t(v text); checkpoint");
        await stop(s);
        // A copy taken before the switches, to recover from the archive later.
        assert.equal(spawnSync("cp", ["-a", cluster.dataDir, copy]).status, 0);

        s = await startWithKrb5(cluster, policy, log, krb5);
        servers.push(s);
        const pm = postmasterPid(cluster.dataDir)!;
        assert.match(readFileSync(`/proc/${pm}/environ`, "latin1"), /(^|\0)KRB5_CONFIG=/, "the server has KRB5_CONFIG");

        if (withPgbackrest) {
          const r = spawnSync("runuser", ["-u", user.name, "--", "pgbackrest", `--config=${brConf}`, "--stanza=t", "stanza-create"], { encoding: "utf8", cwd: cluster.root });
          assert.equal(r.status, 0, r.stdout + r.stderr);
        }
        // 2. One WAL switch archived by each archive_command.
        for (const a of archivers) {
          query(cluster, `alter system set archive_command = '${a.archive.replace(/\bA\//g, `${A}/`)}'`);
          query(cluster, "select pg_reload_conf()");
          // The archiver rereads its configuration when the postmaster passes the SIGHUP on.
          query(cluster, "select pg_sleep(0.5)");
          const seg = query(cluster, `insert into t values ('${a.name}'); select pg_walfile_name(pg_switch_wal())`).split("\n").at(-1)!.trim();
          await waitFor(() => (query(cluster, "select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg), 30_000, `${a.name}: ${seg} archived`).catch((e: Error) => {
            throw new Error(`${e.message}\n${query(cluster, "select * from pg_stat_archiver")}\n${s.stderr().slice(-3000)}\n${denials(log).join("\n")}`);
          });
          if (a.suffix !== undefined) assert.ok(existsSync(join(A, seg + a.suffix)), `${a.name} wrote ${seg}${a.suffix}`);
        }
        assert.equal(query(cluster, "select failed_count from pg_stat_archiver"), "0", s.stderr().slice(-3000));

        // 3. libpq inside the server with a KEYRING: credential cache.
        query(cluster, "create extension dblink");
        for (const gss of ["gssencmode=disable", ""]) {
          const r = query(cluster, `select x from dblink('host=127.0.0.1 port=${cluster.port} dbname=postgres user=postgres ${gss}', 'select 42') as t(x int)`);
          assert.equal(r, "42", `dblink ${gss || "(gssencmode=prefer)"}`);
        }

        // 4. chown in plperlu, owner unchanged (Debian's 15 with postgresql-plperl-15).
        if (existsSync(join(m.binDir!, "../lib/plperl.so"))) {
          const r = psql(cluster, "create extension plperlu; do $$ my @s = stat('postgresql.conf'); chown($s[4], $s[5], 'postgresql.conf') == 1 or die \"chown: $!\"; $$ language plperlu");
          assert.ok(r.ok, r.stderr);
        } else if (full) {
          // postgresql-plperl-15 is in .ci/run's list: on 15, chown in PL/Perl is always tried.
          assert.fail("postgresql-plperl-15 is not installed (apt-get install postgresql-plperl-15)");
        }
        query(cluster, "select 1"); // the server is still up: no crash restart
        assert.doesNotMatch(s.stderr(), /server process .* was terminated|terminating any other active server processes/);
        await stop(s);

        // 5. The copy recovers from the archive: every restore_command form, under the profile.
        const port = await freePort();
        appendFileSync(join(copy, "postgresql.conf"), `port = ${port}\narchive_mode = off\nrestore_command = '${restoreCommand(withPgbackrest ? `${pgbackrest(brConf)} --pg1-path=${copy} archive-get %f %p` : "exit 1").replace(/\bA\//g, `${A}/`)}'\n`);
        writeFileSync(join(copy, "recovery.signal"), "");
        chownSync(join(copy, "recovery.signal"), user.uid, user.gid);
        if (existsSync(join(copy, "postmaster.pid"))) unlinkSync(join(copy, "postmaster.pid"));
        const restored: Cluster = { ...cluster, dataDir: copy, port };
        const b = await startWithKrb5(restored, policy, log, krb5);
        servers.push(b);
        await waitFor(() => query(restored, "select pg_is_in_recovery()") === "f", 60_000, "the copy recovered from the archive and promoted").catch((e: Error) => {
          throw new Error(`${e.message}\n${b.stderr().slice(-3000)}\n${denials(log).join("\n")}`);
        });
        assert.deepEqual(query(restored, "select v from t order by v").split("\n").map((l) => l.trim()), archivers.map((a) => a.name).sort(), b.stderr().slice(-3000));
        // The server's stderr reaches this process through a pipe the event loop reads; the
        // queries above block the loop (spawnSync), so wait for the lines rather than read once.
        const restoredFiles = () => b.stderr().match(/restored log file "[0-9A-F]{24}" from archive/g)?.length ?? 0;
        await waitFor(() => restoredFiles() >= archivers.length, 15_000, "every archived segment restored").catch((e: Error) => {
          throw new Error(`${e.message}: ${restoredFiles()} segments restored\n${b.stderr().slice(-3000)}`);
        });
        await stop(b);

        for (const srv of servers) assert.doesNotMatch(srv.stderr(), KILLED, srv.stderr().slice(-3000));
        assert.deepEqual(denials(log), [], "nothing denied or killed");
        process.stderr.write(`# PostgreSQL ${m.major}: ${Math.round((Date.now() - t0) / 1000)} s\n`);
      } finally {
        for (const srv of servers) await stop(srv);
        destroyCluster(cluster);
      }
    });
  });
}
