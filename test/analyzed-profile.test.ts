// `run` for a server no bundled profile was made for: the installed binaries are analyzed on the
// spot and a profile composed (src/launcher/analyzed-profile.ts). The bundled directory is
// replaced through PG_SECCOMP_PROFILES_DIR (for tests only) by one that holds another major's
// profile, or nothing, so that Debian's PostgreSQL 15 has no profile of its own.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, pgbench, postgresArgs, query } from "../src/postgres/cluster.js";
import { settingList } from "../src/analyze/profile.js";
import { BIN, integrationSkip, logFile, startReady, stop } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();
const dirs = mkdtempSync(join(tmpdir(), "pg_seccomp-profiles-dir-"));
chmodSync(dirs, 0o755);
const only14 = join(dirs, "only14");
const empty = join(dirs, "empty");
mkdirSync(only14);
mkdirSync(empty);
copyFileSync(repoPath("profiles/postgresql-14-x86_64.conf"), join(only14, "postgresql-14-x86_64.conf"));
process.on("exit", () => rmSync(dirs, { recursive: true, force: true }));

test("no profile for the server's major: analyzed on the spot, PostgreSQL 14's seen calls allowed, static-only logged; a workload leaves the log empty", { skip, timeout: 300_000 }, async () => {
  process.env.PG_SECCOMP_PROFILES_DIR = only14;
  const cluster = await createCluster({ conf: ["shared_preload_libraries = 'pg_stat_statements'"] });
  try {
    const log = logFile("analyzed-15.jsonl");
    const s = await startReady(cluster, ["--log", log]);
    let policyPath = "";
    try {
      const init = pgbench(cluster, ["-i", "-s", "1", "-q"]);
      assert.ok(init.ok, init.stderr);
      const run = pgbench(cluster, ["-c", "2", "-j", "2", "-T", "3"]);
      assert.ok(run.ok, run.stderr);
      query(cluster, "CREATE EXTENSION pg_stat_statements");
      query(cluster, "SELECT count(*) FROM pg_stat_statements");
      query(cluster, "VACUUM ANALYZE");
      query(cluster, "CHECKPOINT");
      query(cluster, "DO $$ BEGIN PERFORM pg_sleep(0.1); END $$");
      const note = /WARNING: there is no starter profile for PostgreSQL 15 on x86_64: analyzed (\S+) on the spot \((\d+) files, modules ([^)]*)\) and made (\S+): (.*)/.exec(s.stderr());
      assert.ok(note, s.stderr());
      assert.equal(note[3], "plpgsql, pg_stat_statements", "plpgsql and shared_preload_libraries are analyzed");
      assert.match(note[5]!, /the calls seen for PostgreSQL 14 \(postgresql-14-x86_64\.conf\) and the floor allowed \(\d+\), \d+ more the analysis finds reachable LOGGED/);
      policyPath = note[4]!.replace(/:$/, "");
      assert.match(policyPath, /^\/run\/pg_seccomp\/profiles\/analyzed-postgresql-15-x86_64-[0-9a-f]{12}\.conf$/);
    } finally {
      const r = await stop(s);
      assert.equal(r.signal, null, s.stderr());
    }
    const entries = existsSync(log) ? readFileSync(log, "utf8").trim() : "";
    assert.equal(entries, "", `nothing denied or logged:\n${entries.slice(0, 2000)}`);
    // The profile: 14's seen calls with their evidence, the floor, Debian 15's own static set.
    const text = readFileSync(policyPath, "utf8");
    const bundled14 = readFileSync(join(only14, "postgresql-14-x86_64.conf"), "utf8");
    assert.deepEqual(settingList(text, "global_syscall_allow"), settingList(bundled14, "global_syscall_allow"));
    assert.match(text, /^#   accept: seen (\[\w+\])*\[14-x86_64\]; static libc\.so\.6:accept <- postgres$/m);
    assert.match(text, /^#   seen \[r2\]: round 2, under strace -f -c: /m, "14's round legend carried");
    assert.match(text, /^# arch: x86_64$/m);
    const log15 = settingList(text, "global_syscall_log")!;
    assert.ok(log15.length > 50 && !log15.includes("mount") && !log15.includes("io_uring_setup"));
    assert.match(text, /^#   mount: static .*\(in @mount; needs a capability the server never has: EPERM, as unfiltered\)$/m, "reachable: denied by name, not killed");
    assert.ok(settingList(text, "global_syscall_error")!.includes("mount"));
    // The same input gives the same file (named by content), so a restart reuses it.
    const again = spawnSync(process.execPath, [BIN, "run", "--check", "--", ...postgresArgs(cluster)], { encoding: "utf8" });
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, new RegExp(`policy: +${policyPath.replace(/[.]/g, "\\.")}`));
  } finally {
    destroyCluster(cluster);
    delete process.env.PG_SECCOMP_PROFILES_DIR;
  }
});

test("no profile for the arch at all: the floor and the static set allowed, the high-risk groups killed, said loudly", { skip, timeout: 120_000 }, async () => {
  const cluster = await createCluster();
  try {
    const r = spawnSync(process.execPath, [BIN, "run", "--check", "--", ...postgresArgs(cluster)], {
      encoding: "utf8", env: { ...process.env, PG_SECCOMP_PROFILES_DIR: empty },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /no profile for x86_64 at all, so nothing was seen at run time: the floor and the \d+ calls the analysis finds reachable are ALLOWED; of the high-risk groups, \d+ reachable calls are logged and \d+ denied by name/);
    const path = /policy: +(\S+)/.exec(r.stdout)![1]!;
    const text = readFileSync(path, "utf8");
    const allow = settingList(text, "global_syscall_allow")!;
    // Only the reachable members of the killed groups are logged (never killed); the rest of the static set is allowed.
    const logged = settingList(text, "global_syscall_log")!;
    assert.ok(logged.includes("capset") && !logged.includes("read") && logged.every((n) => !allow.includes(n)), logged.join(", "));
    for (const n of ["read", "openat", "epoll_wait", "sendto", "brk"]) assert.ok(allow.includes(n), n);
    assert.ok(!allow.includes("mount") && !allow.includes("io_uring_setup") && !allow.includes("ptrace"));
  } finally {
    destroyCluster(cluster);
  }
});

test("no profile and nothing to analyze: refused, with what to do (fail closed)", { skip }, () => {
  // A "postgres" that answers --version but is no ELF file: the analysis fails.
  const fake = mkdtempSync(join(tmpdir(), "pg_seccomp-fake-"));
  try {
    const postgres = join(fake, "postgres");
    writeFileSync(postgres, "#!/bin/sh\necho 'postgres (PostgreSQL) 15.99'\n", { mode: 0o755 });
    const r = spawnSync(process.execPath, [BIN, "run", "--check", "--", postgres, "-D", join(fake, "data")], {
      encoding: "utf8", env: { ...process.env, PG_SECCOMP_PROFILES_DIR: empty },
    });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /there is no starter profile for x86_64 \(bundled: none\), and none could be made from the installed binaries: .*not an ELF|there is no starter profile for x86_64 \(bundled: none\), and none could be made/);
    assert.match(r.stderr, /hint: learn one on a test server \(pg_seccomp learn\), or pass --policy FILE/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    // With a bundled major to fall back to, the old loud fallback stays.
    const f = spawnSync(process.execPath, [BIN, "run", "--check", "--", postgres, "-D", join(fake, "data")], {
      encoding: "utf8", env: { ...process.env, PG_SECCOMP_PROFILES_DIR: only14 },
    });
    assert.match(f.stderr, /WARNING: there is no starter profile for PostgreSQL 15 on x86_64: using the one for PostgreSQL 14 \(postgresql-14-x86_64\.conf\)\. Analyzing .* failed/);
  } finally {
    rmSync(fake, { recursive: true, force: true });
  }
});
