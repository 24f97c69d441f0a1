// `learn --verify`'s standard set: what every production server does sooner or later and a short
// workload may not, run after the workload under the policy being verified (issue 17: a learned
// policy passed verify on pgbench and then PANICked the checkpointer at the first
// pg_basebackup). Each step has a deadline; a step that fails is a verify failure named by the
// step, with the first line of its error.
//
// - WAL segments created: a write burst of more than max_wal_size (32MB for the run, set on the
//   command line), so the server zero-fills new segments and checkpoints on WAL volume.
// - CREATE DATABASE (both strategies where the server has them) and DROP DATABASE: mkdir and the
//   copy of a database directory.
// - Temp files: a sort with work_mem = 64kB spills (base/pgsql_tmp is made on the first spill).
// - A base backup: pg_basebackup as the server's user (a walsender streams the files); a server
//   newer than the pg_basebackup beside it gets the low-level backup over SQL instead.
// - An archiver round: archive_mode on (the server's own archive_command when its configuration
//   turns archiving on, else `cp` into a directory of the run's), pg_switch_wal(), and a wait
//   until pg_stat_archiver counts the segment (failed_count counts as a failure).
// - Crash recovery: the procedure's crash round follows (procedure.ts).
//
// Every session is the server's OS user's (Session); what the server answers is read as numbers
// or short text only.

import { spawn, spawnSync } from "node:child_process";
import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { OsUser } from "../postgres/cluster.js";
import { clientSpawn, sleep, type Session } from "./procedure.js";

/** Deadline of each SQL step and of pg_basebackup. */
const STEP_MS = 180_000;
const BURST_TABLE = "pg_seccomp_verify_burst";
const SPILL_TABLE = "pg_seccomp_verify_spill";
const DB = "pg_seccomp_verify_db";

/** A directory the server's user owns (0700) under the system temp directory; removed by the caller. */
export function serverOwnedDir(prefix: string, user: OsUser | undefined): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(dir, 0o700);
  if (user) chownSync(dir, user.uid, user.gid);
  return dir;
}

/** The server's own archive_mode (postgres -C as its user, 10 s): archiving is the DBA's when on. */
export function configuredArchiveMode(postgres: string, dataDir: string, user: OsUser | undefined): string | undefined {
  const r = spawnSync(postgres, ["-C", "archive_mode", "-D", dataDir], {
    encoding: "utf8", timeout: 10_000, maxBuffer: 4096, stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: "/usr/bin:/bin", LANG: "C" }, ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

/** The -c arguments the standard set needs at start, and the archive directory it made (if any). */
export function standardSetArgs(postgres: string, configDir: string, user: OsUser | undefined): { args: string[]; archiveDir?: string } {
  const args = ["-c", "max_wal_size=32MB", "-c", "min_wal_size=32MB"];
  const mode = configuredArchiveMode(postgres, configDir, user);
  if (mode === "on" || mode === "always") return { args };
  const archiveDir = serverOwnedDir("pg_seccomp-verify-archive-", user);
  return { args: [...args, "-c", "archive_mode=on", "-c", `archive_command=test ! -f ${archiveDir}/%f && cp %p ${archiveDir}/%f`], archiveDir };
}

/** A program as the server's user with a deadline (its process group is killed when it passes). */
function runAs(s: Session, argv: string[], deadlineMs: number): Promise<{ ok: boolean; err: string }> {
  const c = clientSpawn(s.ep, s.user, s.binDir);
  return new Promise((res) => {
    const child = spawn(argv[0]!, argv.slice(1), { ...c, stdio: ["ignore", "ignore", "pipe"], detached: true });
    let err = "";
    child.stderr!.on("data", (d: Buffer) => void (err = (err + d.toString()).slice(-4000)));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, "SIGKILL");
      } catch {
        /* gone */
      }
      err = `did not finish within ${deadlineMs / 1000} s`;
    }, deadlineMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      res({ ok: false, err: e.message });
    });
    child.on("exit", (code) => {
      clearTimeout(timer);
      res({ ok: code === 0, err: err.trim().split("\n")[0] ?? "" });
    });
  });
}

/** The standard set (see the top of this file); each step's failure goes to `failures`. */
export async function runStandardSet(
  s: Session,
  o: { major: number; line: (s: string) => void; failures: string[]; user: OsUser | undefined; archiving: boolean },
): Promise<void> {
  const { line, failures } = o;
  const step = async (name: string, f: () => Promise<string | void>) => {
    const t0 = Date.now();
    try {
      const detail = await f();
      line(`standard set: ${name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s${detail ? ` (${detail})` : ""}`);
    } catch (e) {
      const msg = `standard set: ${name} failed: ${(e as Error).message.split("\n")[0]}`;
      failures.push(msg);
      line(msg);
    }
  };
  const sql = (q: string) => s.sql(q, STEP_MS);

  await step("WAL burst past max_wal_size", async () => {
    const before = await sql("select pg_current_wal_lsn()");
    await sql(`DROP TABLE IF EXISTS ${BURST_TABLE}`);
    await sql(`CREATE TABLE ${BURST_TABLE} AS SELECT g, repeat('x', 1000) AS pad FROM generate_series(1, 50000) g`);
    await sql(`UPDATE ${BURST_TABLE} SET g = g + 1`);
    const bytes = Number(await sql(`select pg_wal_lsn_diff(pg_current_wal_lsn(), '${/^[0-9A-F]+\/[0-9A-F]+$/.test(before) ? before : "0/0"}')`));
    const max = Number(await sql("select setting::bigint * 1024 * 1024 from pg_settings where name = 'max_wal_size'"));
    await sql(`DROP TABLE ${BURST_TABLE}`);
    if (!(bytes > max)) throw new Error(`only ${bytes} bytes of WAL, max_wal_size is ${max}`);
    return `${Math.round(bytes / 1048576)} MB of WAL, max_wal_size ${Math.round(max / 1048576)} MB`;
  });

  await step("CREATE DATABASE", async () => {
    const strategies = o.major >= 15 ? [" STRATEGY wal_log", " STRATEGY file_copy"] : [""];
    for (const st of strategies) {
      await sql(`DROP DATABASE IF EXISTS ${DB}`);
      await sql(`CREATE DATABASE ${DB}${st}`);
      await sql(`DROP DATABASE ${DB}`);
    }
    return strategies.map((x) => x.trim() || "default").join(", ");
  });

  await step("temp-file spill (work_mem 64kB, a big sort)", async () => {
    await sql(`SET work_mem = '64kB'; SELECT count(*) FROM (SELECT g FROM generate_series(1, 300000) g ORDER BY g DESC) s; CREATE TEMP TABLE ${SPILL_TABLE} AS SELECT g FROM generate_series(1, 1000) g; SELECT count(*) FROM ${SPILL_TABLE}`);
  });

  await step("base backup", async () => {
    const dir = serverOwnedDir("pg_seccomp-verify-backup-", o.user);
    try {
      const r = await runAs(s, [join(s.binDir, "pg_basebackup"), "-D", join(dir, "b"), "-X", "stream", "-c", "fast", "--no-sync"], STEP_MS);
      if (r.ok) return "pg_basebackup";
      if (!/incompatible server version/.test(r.err)) throw new Error(`pg_basebackup: ${r.err}`);
      // The pg_basebackup beside the server is older than it: the low-level backup over SQL.
      const start = o.major >= 15 ? "pg_backup_start('pg_seccomp verify', true)" : "pg_start_backup('pg_seccomp verify', true, false)";
      const stop = o.major >= 15 ? "pg_backup_stop()" : "pg_stop_backup(false)";
      await sql(`SELECT ${start}; SELECT pg_switch_wal(); SELECT lsn FROM ${stop}`);
      return `low-level backup over SQL (${r.err})`;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  if (o.archiving) {
    await step("archiver round", async () => {
      const q = "select archived_count || ' ' || failed_count from pg_stat_archiver";
      const [a0, f0] = (await sql(q)).split(" ").map(Number);
      await sql("CREATE TABLE IF NOT EXISTS pg_seccomp_verify_archive (i int); INSERT INTO pg_seccomp_verify_archive VALUES (1); DROP TABLE pg_seccomp_verify_archive");
      await sql("SELECT pg_switch_wal()");
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const [a, f] = (await sql(q)).split(" ").map(Number);
        if ((f ?? 0) > (f0 ?? 0)) throw new Error(`archive_command failed (pg_stat_archiver.failed_count ${f0} -> ${f}); see the server log`);
        if ((a ?? 0) > (a0 ?? 0)) return `archived_count ${a0} -> ${a}`;
        await sleep(250);
      }
      throw new Error("no segment archived within 60 s");
    });
  }
}
