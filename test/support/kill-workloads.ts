// The workloads of issue 17 that killed servers and their programs (chown of the socket, archive
// tools that keep a file's owner, libpq reading a KEYRING: credential cache, chown in PL/Perl),
// run on one real cluster under a given policy: test/profile-kills.test.ts runs them under each
// bundled profile, test/learn-safe.test.ts under each policy the documented learn procedure
// wrote. Nothing may be killed, and nothing denied: no error, trap or kill entry in the violation
// log.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { appendFileSync, chownSync, existsSync, mkdirSync, readFileSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, freePort, postmasterPid, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { logFile, startReady, stop, waitFor, writePolicy, type RunningServer } from "./server.js";

interface Archiver {
  name: string;
  /** The program that must be installed. */
  tool: string;
  /** archive_command, with A for the archive directory. */
  archive: string;
  /** The file it leaves for segment %f in A (none: pgBackRest keeps its own repository). */
  suffix?: string;
}

export const ARCHIVERS: Archiver[] = [
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

export const has = (tool: string) => spawnSync("sh", ["-c", `command -v ${tool}`]).status === 0;

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

export interface KillWorkloadOptions {
  binDir: string;
  major: number;
  /** The policy's text. */
  policy: string;
  /** Names the policy, the log and the files ("kills-15", "learned-15"). */
  label: string;
  /** Every archive tool, pgBackRest where installed, and PL/Perl's chown (a must on 15); else gzip, zstd and cp -a. */
  full: boolean;
}

/** The archivers a run uses: every one installed when full, else gzip, zstd and cp -a. */
export function archiversFor(full: boolean): Archiver[] {
  return ARCHIVERS.filter((a) => (full || ["gzip", "zstd", "cp -a"].includes(a.name)) && has(a.tool));
}

/**
 * unix_socket_group, one WAL switch archived by each archiver, dblink with a KEYRING: cache,
 * chown in plperlu (where PL/Perl is installed), and a copy of the cluster recovering from that
 * archive with each restore form: all under `policy`, nothing killed, nothing denied.
 */
export async function runKillWorkloads(o: KillWorkloadOptions): Promise<void> {
  const m = { major: o.major, binDir: o.binDir };
  const full = o.full;
  const withPgbackrest = full && has("pgbackrest");
  const archivers = archiversFor(full);
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
  const policy = writePolicy(o.policy, `${o.label}.conf`);
  const krb5 = writePolicy("[libdefaults]\n    default_ccache_name = KEYRING:persistent:%{uid}\n", `krb5-${o.label}.conf`);
  const log = logFile(`${o.label}.jsonl`);
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

    // 5. The copy recovers from the archive: every restore_command form, under the policy.
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
    process.stderr.write(`# PostgreSQL ${m.major} (${o.label}): ${Math.round((Date.now() - t0) / 1000)} s\n`);
  } finally {
    for (const srv of servers) await stop(srv);
    destroyCluster(cluster);
  }
}
