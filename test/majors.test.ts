// Every supported major, really run (Debian's 15; 14, 16, 17, 18 from the embedded builds):
// - the broad workload under the major's own starter profile with default kill, on a primary and
//   a filtered streaming standby, with empty violation logs (15: test/profile.test.ts);
// - every process of a running server classified into its own backend type, as pg_stat_activity
//   names it, including 14's stats collector, 17's walsummarizer and 18's io workers;
// - run --check notes the process kinds a policy names that the server does not have;
// - the SQL surface (sql install, seccomp.seccomp_filter(), seccomp.pg_get_seccomp_filter(), seccomp.set_client_filter(),
//   seccomp.violations) works on each.

import { test, describe } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, postgresArgs, psql, query } from "../src/postgres/cluster.js";
import { readContexts } from "../src/host/run-state.js";
import { BIN, integrationSkip, logFile, startReady, stop, waitFor, writePolicy } from "./support/server.js";
import { majors } from "./support/majors.js";
import { profileWorkloadUnderKill } from "./support/profile-workload.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();

/** The policy's context for a pg_stat_activity backend_type. */
function expectedContext(backendType: string): string {
  return backendType === "client backend" ? "session" : backendType.replace(/ /g, "_");
}

/** Children of `ppid` whose title is `title` (PostgreSQL 14's stats collector has no pg_stat_activity row). */
function childrenTitled(ppid: number, title: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync("/proc")) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const st = readFileSync(`/proc/${d}/stat`, "utf8");
      if (Number(st.slice(st.lastIndexOf(")") + 2).split(" ")[1]) !== ppid) continue;
      if (readFileSync(`/proc/${d}/cmdline`, "utf8").replace(/\0+$/, "").trim() === title) out.push(Number(d));
    } catch {
      /* gone */
    }
  }
  return out;
}

for (const m of majors()) {
  describe(`PostgreSQL ${m.major}`, { skip: skip || m.skip }, () => {
    test("every process is classified into its own backend type", { timeout: 120_000 }, async () => {
      const cluster = await createCluster({ binDir: m.binDir!, conf: m.major >= 17 ? ["summarize_wal = on"] : [] });
      // The bundled profile, with one call that differs between contexts (epoll_wait, which every
      // process makes while it waits), so that every process is classified and pinned.
      const profile = readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8");
      const policy = writePolicy(profile + "\nlogger_syscall_log = 'epoll_wait, epoll_pwait'\n", `classify-${m.major}.conf`);
      const s = await startReady(cluster, ["--policy", policy, "--log", logFile(`classify-${m.major}.jsonl`)]);
      try {
        const pm = Number(readFileSync(join(cluster.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
        const rows = () => query(cluster, "select pid, backend_type from pg_stat_activity where pid <> pg_backend_pid()").split("\n").map((l) => l.split("|")).map(([pid, type]) => ({ pid: Number(pid), type: type! }));
        const expected = new Map<number, string>();
        await waitFor(() => {
          expected.clear();
          for (const r of rows()) expected.set(r.pid, expectedContext(r.type));
          if (m.major === 14) for (const pid of childrenTitled(pm, "postgres: stats collector")) expected.set(pid, "stats_collector");
          const pins = new Map((readContexts(pm) ?? []).map((p) => [p.pid, p.ctx.context]));
          return [...expected].every(([pid, ctx]) => pins.get(pid) === ctx);
        }, 30_000, `every process pinned to its backend type (PostgreSQL ${m.major})`).catch((e: Error) => {
          const pins = readContexts(pm) ?? [];
          throw new Error(`${e.message}\nexpected: ${JSON.stringify([...expected])}\npinned: ${JSON.stringify(pins.map((p) => [p.pid, p.ctx.context]))}\n${s.stderr().slice(-2000)}`);
        });
        const kinds = new Set(expected.values());
        // Each row agreed with what its process keeps in its own memory (the row cross-check: names, walsender flag, backend type).
        assert.doesNotMatch(s.stderr(), /inconsistent: the server's row|cannot be read to confirm the server's row/, s.stderr().slice(-2000));
        for (const k of ["checkpointer", "background_writer", "walwriter", "autovacuum_launcher", "logical_replication_launcher"]) assert.ok(kinds.has(k), `${k} among ${[...kinds]}`);
        if (m.major === 14) assert.ok(kinds.has("stats_collector"), "14's stats collector");
        if (m.major >= 17) assert.ok(kinds.has("walsummarizer"), "17's WAL summarizer (summarize_wal = on)");
        if (m.major >= 18) assert.equal([...expected.values()].filter((k) => k === "io_worker").length, 3, "18's three io workers");
        // status shows the same contexts, from the launcher's record.
        const st = spawnSync(process.execPath, [BIN, "status", "-D", cluster.dataDir, "--json"], { encoding: "utf8" });
        const shown = new Map((JSON.parse(st.stdout) as { processes: Array<{ pid: number; context: string }> }).processes.map((p) => [p.pid, p.context]));
        for (const [pid, ctx] of expected) if (ctx !== "session") assert.equal(shown.get(pid), ctx, `status: pid ${pid}`);
        assert.doesNotMatch(st.stdout, /io_uring/);
      } finally {
        await stop(s);
        destroyCluster(cluster);
      }
    });

    test("run --check: the process kinds this server does not have are notes, not errors", { timeout: 60_000 }, async () => {
      const cluster = await createCluster({ binDir: m.binDir! });
      try {
        const policy = writePolicy(
          readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8") + "\nio_worker_syscall_allow = '*'\nwalsummarizer_syscall_allow = '*'\nstats_collector_syscall_allow = '*'\n",
          `kinds-${m.major}.conf`,
        );
        const r = spawnSync(process.execPath, [BIN, "run", "--check", "--policy", policy, "--", ...postgresArgs(cluster)], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        const absent = [...r.stderr.matchAll(/note: PostgreSQL \d+ has no (\w+) processes/g)].map((x) => x[1]).sort();
        const want = [m.major < 18 ? "io_worker" : "", m.major > 14 ? "stats_collector" : "", m.major < 17 ? "walsummarizer" : ""].filter(Boolean);
        assert.deepEqual(absent, want);
        assert.doesNotMatch(r.stderr, /io_uring/);
        // Without --policy: the server's own bundled profile, no fallback warning.
        const own = spawnSync(process.execPath, [BIN, "run", "--check", "--", ...postgresArgs(cluster)], { encoding: "utf8" });
        assert.equal(own.status, 0, own.stderr);
        assert.match(own.stdout, new RegExp(`policy: +\\S*profiles/postgresql-${m.major}-x86_64\\.conf`));
        assert.doesNotMatch(own.stderr, /no starter profile/);
      } finally {
        destroyCluster(cluster);
      }
    });

    test("the SQL surface: sql install, seccomp.seccomp_filter() and seccomp.pg_get_seccomp_filter() from the launcher's table, seccomp.set_client_filter() narrowing its session, seccomp.violations", { timeout: 120_000 }, async () => {
      const cluster = await createCluster({ binDir: m.binDir! });
      const profile = readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8");
      const policy = writePolicy(profile + "\nset_client_filter = on\nsession_syscall_error = '*, execve'\n", `sql-${m.major}.conf`);
      const s = await startReady(cluster, ["--policy", policy, "--log", logFile(`sql-${m.major}.jsonl`)]);
      try {
        const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
        const inst = spawnSync(process.execPath, [BIN, "sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", "x86_64"], { encoding: "utf8" });
        assert.equal(inst.status, 0, inst.stderr);
        assert.equal(query(cluster, "select filter_action from seccomp.seccomp_filter() where syscall = 'execve' and context = 'session'"), "session->error");
        assert.equal(query(cluster, "select filter_action from seccomp.pg_get_seccomp_filter() where syscall = 'getdents64' and context = 'session'"), "session->allow");
        assert.equal(psql(cluster, "copy (select 1) to program 'cat > /dev/null'").ok, false, "sessions may not exec");
        // One session: narrow it, see the narrowed row, and the kernel deny what it names.
        const r = spawnSync(join(cluster.binDir, "psql"), [
          "-X", "-A", "-t", "-d", "postgres", "-v", "ON_ERROR_STOP=0",
          "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'getdents64', NULL)",
          "-c", "select filter_action from seccomp.seccomp_filter() where syscall = 'getdents64' and context = 'session'",
          "-c", "select count(*) from pg_ls_dir('.')",
        ], { encoding: "utf8", env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres" } });
        const out = r.stdout + r.stderr;
        assert.match(out, /^OK$/m, out);
        assert.match(out, /^client->error$/m, out);
        assert.match(out, /could not (read|open) directory "\.": Operation not permitted/, out);
        await waitFor(() => /execve/.test(query(cluster, "select string_agg(syscall, ',') from seccomp.violations where action = 'error'")), 10_000, `the denied exec in seccomp.violations (PostgreSQL ${m.major})`);
      } finally {
        await stop(s);
        destroyCluster(cluster);
      }
    });

    if (m.major === 18) {
      test("the embedded PostgreSQL 18 has no liburing: io_method = io_uring is refused by the server itself", () => {
        const ldd = execFileSync("ldd", [join(m.binDir!, "postgres")], { encoding: "utf8" });
        assert.doesNotMatch(ldd, /liburing/);
      });
    }

    if (m.major !== 15) {
      test("the broad workload under the major's starter profile with default kill: empty violation logs on a primary and a standby", { timeout: 300_000 }, async () => {
        await profileWorkloadUnderKill(m.major, { timeoutMs: 240_000 });
      });
    }
  });
}
