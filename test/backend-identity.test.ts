// The row cross-check's reader on every major (Debian's 15, the embedded 14, 16, 17, 18): the
// offsets of `Port`'s user and database names (src/host/backend-identity.ts, PORT_NAME_OFFSETS)
// and `MyProcPort` from the executable's symbols read, in a live backend of a server under
// `pg_seccomp run`, the role and database it connected as and whether it is a walsender
// (`am_walsender`); and a server under per-role rules
// classifies a session of each role as that role (the check passes for the genuine row).

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { createCluster, destroyCluster, postgresMajorVersion, postmasterPid, query } from "../src/postgres/cluster.js";
import { backendIdentityReader } from "../src/supervisor/backend-identity.js";
import { integrationSkip, startReady, stop, waitFor, writePolicy } from "./support/server.js";
import { majors } from "./support/majors.js";
import { chmodSync, copyFileSync, cpSync, mkdtempSync, readFileSync, renameSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();

for (const m of majors()) {
  describe(`PostgreSQL ${m.major}`, { skip: skip || m.skip }, () => {
    test("MyProcPort's user and database names are the role and database a backend connected as; per-role rules still classify by role", { timeout: 120_000 }, async () => {
      const cluster = await createCluster({ binDir: m.binDir! });
      const profile = readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8");
      const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`);
      const s = await startReady(cluster, ["--policy", policy]);
      try {
        query(cluster, "create role \"al ice\" login; create role alice login replication in role pg_execute_server_program");
        query(cluster, "create database \"a db\"");
        const postgres = join(m.binDir!, "postgres");
        const reader = backendIdentityReader(postgres, postmasterPid(cluster.dataDir)!, postgresMajorVersion(postgres));
        assert.ok(!("unavailable" in reader), "unavailable" in reader ? reader.unavailable : "");
        // The third: a walsender with a database (replication=database), which runs SQL too.
        for (const [role, db, walsender] of [["al ice", "a db", false], ["postgres", "postgres", false], ["postgres", "postgres", true]] as const) {
          const p = spawn(join(m.binDir!, "psql"), ["-X", "-qAt", ...(walsender ? ["-d", `dbname=${db} replication=database`] : []), "-c", "select pg_sleep(30)"], {
            env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: role, PGDATABASE: db },
            stdio: "ignore",
          });
          try {
            let pid = "";
            await waitFor(() => (pid = query(cluster, `select pid from pg_stat_activity where usename = '${role}' and backend_type = '${walsender ? "walsender" : "client backend"}' and query like 'select pg_sleep%'`)) !== "", 10_000, `${role}'s backend`);
            assert.deepEqual(reader.read(Number(pid)), { user: role, database: db, walsender });
          } finally {
            p.kill();
          }
        }
        // The genuine row passes the check: alice may exec, and her session is classified as alice.
        assert.match(query(cluster, "copy (select 1) to program 'cat > /dev/null'", { role: "alice" }), /COPY 1/);
        // And a walsender with a database (replication=database) of alice's is hers too.
        assert.match(query(cluster, "copy (select 1) to program 'cat > /dev/null'", { role: "alice", db: "dbname=postgres replication=database" }), /COPY 1/);
        assert.doesNotMatch(s.stderr(), /inconsistent: the server's row|cannot be read to confirm/);
      } finally {
        await stop(s);
        destroyCluster(cluster);
      }
    });
  });
}

// A package upgrade renames a new postgres over the one the server runs: the running processes'
// maps then name "PATH (deleted)". The reader finds the executable by the device and inode of the
// file it read its symbols from, not by path, so rows are still cross-checked (before: every
// check "cannot be read", and each session got the most restrictive context until a restart).
const relocatable = majors().find((m) => m.major === 16 && !m.skip && m.binDir);
test("postgres replaced while the server runs (an upgrade's rename): rows are still cross-checked, alice may still exec", { skip: skip || (!relocatable && "no embedded PostgreSQL 16"), timeout: 120_000 }, async () => {
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-upgrade-"));
  chmodSync(root, 0o755);
  cpSync(join(relocatable!.binDir!, ".."), join(root, "native"), { recursive: true });
  const binDir = join(root, "native", "bin");
  const cluster = await createCluster({ binDir });
  const profile = readFileSync(repoPath("profiles/postgresql-16-x86_64.conf"), "utf8");
  const s = await startReady(cluster, ["--policy", writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`)]);
  try {
    query(cluster, "create role alice login in role pg_execute_server_program");
    const postgres = join(binDir, "postgres");
    copyFileSync(postgres, `${postgres}.new`);
    renameSync(`${postgres}.new`, postgres);
    assert.match(readFileSync(`/proc/${postmasterPid(cluster.dataDir)}/maps`, "utf8"), / \(deleted\)$/m, "the running executable's path now names another file");
    assert.match(query(cluster, "copy (select 1) to program 'cat > /dev/null'", { role: "alice" }), /COPY 1/);
    assert.doesNotMatch(s.stderr(), /cannot be read to confirm|inconsistent: the server's row/, s.stderr().slice(-3000));
  } finally {
    await stop(s);
    destroyCluster(cluster);
    rmSync(root, { recursive: true, force: true });
  }
});
