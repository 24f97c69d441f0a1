// Issue 17's done-criterion, end to end, on Debian's 15 and an embedded 17: a policy made by the
// documented learn procedure (docs/profiles.md, "Learning a policy for your server": learn with
// the defaults on 10 s of pgbench, then learn --verify with its standard set) keeps a server
// alive through what the 10 s never showed: pg_basebackup (or, where Debian's pg_basebackup is
// older than the server, the low-level backup over SQL) and a streaming standby under the same
// policy, `pgbench -i -s 10`, archiving with gzip, and a backend killed (crash recovery). Nothing
// may be killed (no "signal 31" / "exit code 159" in the server log) and nothing denied (the
// violation logs hold no error, trap or kill).
//
// Also: a failing workload makes learn fail and leaves the output as it was; -o may not be the
// --merge input without --force; -o in a directory the server's user can write is refused at
// the start; a policy missing a call the postmaster needs fails verify with the call named.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, freePort, postgresArgs, type Cluster } from "../src/postgres/cluster.js";
import type { ViolationEvent } from "../src/host/violation-event.js";
import { BIN, integrationSkip, logFile, startReady, startRun, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { majors } from "./support/majors.js";

const skip = integrationSkip();
// The docs' workload (docs/profiles.md): 10 seconds of pgbench.
const WORKLOAD = "pgbench -i -q -s 1 && pgbench -c 2 -T 10 >/dev/null";

const clusters: Cluster[] = [];
const dirs: string[] = [];
after(() => {
  for (const c of clusters) destroyCluster(c);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function cli(args: string[], cluster: Cluster, timeout = 600_000) {
  return spawnSync(process.execPath, [BIN, ...args, "--", ...postgresArgs(cluster)], { encoding: "utf8", timeout });
}

/** A directory the server's user owns. */
function serverDir(c: Cluster, prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  chmodSync(d, 0o700);
  chownSync(d, c.user.uid, c.user.gid);
  dirs.push(d);
  return d;
}

/** A shell command as the server's OS user, with the cluster's socket and port (peer authentication). */
function asServer(c: Cluster, command: string, timeout = 300_000) {
  return spawnSync("sh", ["-c", command], {
    uid: c.user.uid, gid: c.user.gid, encoding: "utf8", timeout, cwd: "/",
    env: { PATH: `${c.binDir}:/usr/bin:/bin`, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres", HOME: "/" },
  });
}

function sql(c: Cluster, q: string): string {
  const r = asServer(c, `psql -X -qAt -c "${q}"`, 60_000);
  assert.equal(r.status, 0, `${q}: ${r.stderr}`);
  return r.stdout.trim();
}

/** Peer authentication only, replication included: the workload must run as the server's OS user. */
async function peerCluster(major: number, conf: string[] = []): Promise<Cluster> {
  const c = await createCluster({ major, conf: ["wal_level = replica", "max_wal_senders = 4", ...conf] });
  clusters.push(c);
  writeFileSync(join(c.dataDir, "pg_hba.conf"), "local all all peer\nlocal replication all peer\n");
  return c;
}

function events(path: string): ViolationEvent[] {
  return existsSync(path) ? readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent) : [];
}

const denied = (es: ViolationEvent[]) => es.filter((e) => e.action === "error" || e.action === "kill" || e.action === "trap");
const KILLED = /signal 31|exit code 159|Bad system call|PANIC/;

/** A standby of `primary` from a base backup: pg_basebackup -R, or the low-level backup over SQL when pg_basebackup is older than the server. */
function makeStandby(primary: Cluster, major: number): { standby: Cluster; how: string } {
  const root = serverDir(primary, "pg_seccomp-standby-");
  const dataDir = join(root, "data");
  const b = asServer(primary, `pg_basebackup -D ${dataDir} -X stream -R -c fast --no-sync`);
  let how = "pg_basebackup -R";
  if (b.status !== 0) {
    assert.match(b.stderr, /incompatible server version/, b.stderr);
    how = "the low-level backup over SQL";
    const start = "select pg_backup_start('standby', true)";
    const stopQ = "select labelfile from pg_backup_stop(true)";
    const copy = `mkdir -m 700 ${dataDir} && tar -C ${primary.dataDir} --exclude=./pg_wal/* --exclude=./postmaster.pid --exclude=./postmaster.opts -cf - . | tar -C ${dataDir} -xf -`;
    const r = asServer(primary, `psql -X -qAt <<'SQL'\n${start};\n\\! ${copy}\n\\o ${root}/backup_label\n${stopQ};\n\\o\nSQL\ncp ${root}/backup_label ${dataDir}/backup_label && touch ${dataDir}/standby.signal && echo "primary_conninfo = 'host=${primary.socketDir} port=${primary.port} user=postgres'" >> ${dataDir}/postgresql.auto.conf`);
    assert.equal(r.status, 0, r.stderr);
  }
  void major;
  const socketDir = join(root, "sock");
  mkdirSync(socketDir);
  chownSync(socketDir, primary.user.uid, primary.user.gid);
  return { standby: { ...primary, root, dataDir, socketDir, port: 0 }, how };
}

for (const m of majors().filter((x) => x.major === 15 || x.major === 17)) {
  test(
    `PostgreSQL ${m.major}: the documented learn procedure on 10 s of pgbench; under its policy pg_basebackup, a standby, pgbench -i -s 10, archiving with gzip and crash recovery: nothing killed, nothing denied`,
    { skip: skip || m.skip, timeout: 1_200_000 },
    async () => {
      const t0 = Date.now();
      const archive = mkdtempSync(join(tmpdir(), "pg_seccomp-archive-"));
      dirs.push(archive);
      const primary = await peerCluster(m.major, ["archive_mode = on", `archive_command = 'gzip -c %p > ${archive}/%f.gz'`]);
      chownSync(archive, primary.user.uid, primary.user.gid);
      const out = writePolicy("", `learned-${m.major}.conf`);

      // 1. learn, as docs/profiles.md shows it.
      const r = cli(["learn", "-o", out, "--workload", WORKLOAD], primary);
      assert.equal(r.status, 0, r.stderr.slice(-5000));
      assert.match(r.stderr, /complete: every timer path and crash recovery ran/);
      assert.doesNotMatch(r.stderr, /pg_stat_checkpointer" does not exist|relation "pg_stat/);
      // One line per step: the postmaster's command line is never repeated on every line.
      assert.ok(r.stderr.split("\n").filter((l) => l.includes(primary.dataDir)).length <= 3, r.stderr.slice(0, 3000));
      const text = readFileSync(out, "utf8");
      assert.match(text, /^#   brk: .*floor \[malloc\]/m);
      // What the 10 s did not show but the server's files can do is logged, never denied: WAL
      // segment creation (pwritev's zero-fill), new database directories (mkdir), the archiver's execve.
      const list = (name: string) => (new RegExp(`^${name} = '([^']*)'$`, "m").exec(text)?.[1] ?? "").split(", ");
      const allowOrLog = new Set([...list("global_syscall_allow"), ...list("global_syscall_log")]);
      assert.ok(list("global_syscall_log").length > 10, "reachable statically and never seen: logged");
      for (const n of ["pwritev", "mkdir", "execve", "ioctl", "getuid", "clone", "pipe2"]) assert.ok(allowOrLog.has(n), n);
      assert.doesNotMatch(text, /^(?!global_)[a-z_]+_syscall_(allow|error|default)/m, "no context narrowed from absence of observation");
      const learnS = (Date.now() - t0) / 1000;

      // 2. verify, with its standard set.
      const v = cli(["learn", "--verify", out, "--workload", WORKLOAD], primary);
      assert.equal(v.status, 0, `${v.stdout}\n${v.stderr.slice(-5000)}`);
      assert.match(v.stdout, /^verify: passed/m);
      for (const step of ["WAL burst past max_wal_size", "CREATE DATABASE", "temp-file spill", "base backup", "archiver round"]) {
        assert.match(v.stderr, new RegExp(`standard set: ${step}[^\\n]*: done`), step);
      }
      const verifyS = (Date.now() - t0) / 1000 - learnS;

      // 3. run under it: what the 10 s never showed.
      const log = logFile(`learned-run-${m.major}.jsonl`);
      const standbyLog = logFile(`learned-standby-${m.major}.jsonl`);
      const s = await startReady(primary, ["--policy", out, "--log", log]);
      let sb: RunningServer | undefined;
      try {
        const { standby, how } = makeStandby(primary, m.major);
        standby.port = await freePort();
        writeFileSync(join(standby.dataDir, "postgresql.auto.conf"), `\nport = ${standby.port}\nunix_socket_directories = '${standby.socketDir}'\narchive_mode = off\n`, { flag: "a" });
        chownSync(join(standby.dataDir, "postgresql.auto.conf"), primary.user.uid, primary.user.gid);
        sb = await startReady(standby, ["--policy", out, "--log", standbyLog]);
        await waitFor(() => sql(primary, "select count(*) from pg_stat_replication where state = 'streaming'") === "1", 60_000, `the standby streaming (${how})`);
        const i = asServer(primary, "pgbench -i -q -s 10", 600_000);
        assert.equal(i.status, 0, i.stderr);
        sql(primary, "select pg_switch_wal()");
        await waitFor(() => Number(sql(primary, "select archived_count from pg_stat_archiver")) > 0, 60_000, "a segment archived");
        assert.equal(sql(primary, "select failed_count from pg_stat_archiver"), "0");
        assert.ok(readdirSync(archive).some((f) => f.endsWith(".gz")));
        await waitFor(() => sql(standby, "select count(*) from pgbench_accounts") === "1000000", 120_000, "the standby replaying pgbench -i -s 10");
        // Crash recovery: a backend killed, the postmaster's in-place restart.
        const victim = spawn("sh", ["-c", "psql -X -qAt -c 'select pg_sleep(600)'"], {
          uid: primary.user.uid, gid: primary.user.gid, stdio: "ignore",
          env: { PATH: `${primary.binDir}:/usr/bin:/bin`, PGHOST: primary.socketDir, PGPORT: String(primary.port), PGUSER: "postgres", PGDATABASE: "postgres", HOME: "/" },
        });
        let pid = "";
        await waitFor(() => (pid = sql(primary, "select pid from pg_stat_activity where query = 'select pg_sleep(600)'")) !== "", 60_000, "the sleeping backend");
        process.kill(Number(pid), "SIGKILL");
        await new Promise((res) => victim.on("exit", res));
        await waitFor(() => asServer(primary, "psql -X -qAt -c 'select 1'", 10_000).stdout.trim() === "1", 120_000, "the server back after crash recovery");
        sql(primary, "CHECKPOINT");
      } finally {
        if (sb) await stop(sb);
        await stop(s);
      }
      const runS = (Date.now() - t0) / 1000 - learnS - verifyS;
      assert.doesNotMatch(s.stderr(), KILLED, s.stderr().slice(-4000));
      if (sb) assert.doesNotMatch(sb.stderr(), KILLED, sb.stderr().slice(-4000));
      assert.deepEqual(denied(events(log)), [], "the primary: nothing denied");
      assert.deepEqual(denied(events(standbyLog)), [], "the standby: nothing denied");
      process.stderr.write(`# PostgreSQL ${m.major}: learn ${learnS.toFixed(0)} s, verify ${verifyS.toFixed(0)} s, run ${runS.toFixed(0)} s\n`);
    },
  );
}

test("a policy missing a call the postmaster needs fails verify, naming it", { skip, timeout: 300_000 }, async () => {
  const c = await peerCluster(15);
  const out = writePolicy("", "learned-short.conf");
  const r = cli(["learn", "-o", out, "--no-timers", "--no-crash-round", "--workload", "psql -X -c 'select 1'"], c);
  assert.equal(r.status, 2, r.stderr.slice(-3000));
  const broken = writePolicy(readFileSync(out, "utf8").replace(/\bgeteuid, |, geteuid\b/g, ""), "learned-broken.conf");
  assert.doesNotMatch(readFileSync(broken, "utf8"), /^global_syscall_allow = '.*\bgeteuid\b/m);
  const f = cli(["learn", "--verify", broken, "--no-standard-set", "--timer-wait", "0", "--workload", "psql -X -c 'select 1'"], c);
  assert.equal(f.status, 1, f.stderr.slice(-3000));
  assert.match(f.stdout, /^verify: FAILED/m);
  assert.match(f.stdout, /geteuid/);
});

test("a failing workload makes learn fail and leaves the output as it was", { skip, timeout: 300_000 }, async () => {
  const c = await peerCluster(15);
  const out = writePolicy("# an earlier round\n", "learned-kept.conf");
  const r = cli(["learn", "-o", out, "--workload", "psql -X -c 'select 1' && exit 3"], c);
  assert.equal(r.status, 1, r.stderr.slice(-3000));
  assert.match(r.stderr, /learning failed: the workload failed \(exit code 3\)/);
  assert.equal(readFileSync(out, "utf8"), "# an earlier round\n");
});

test("-o may not be the --merge input without --force; -o where the server's user can write is refused at the start", { skip, timeout: 120_000 }, async () => {
  const c = await peerCluster(15);
  const out = writePolicy("", "learned-merge.conf");
  const r = cli(["learn", "-o", out, "--merge", out, "--workload", "true"], c);
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /is the --merge input/);
  const t = Date.now();
  const theirs = serverDir(c, "pg_seccomp-theirs-");
  const w = cli(["learn", "-o", join(theirs, "learned.conf"), "--workload", "true"], c);
  assert.notEqual(w.status, 0);
  assert.match(w.stderr, /pg_seccomp: error: refusing -o .*the server's user \(postgres\) could change/);
  assert.ok(Date.now() - t < 30_000, "refused before learning");
  const inData = cli(["learn", "-o", join(c.dataDir, "learned.conf"), "--workload", "true"], c);
  assert.notEqual(inData.status, 0);
  assert.match(inData.stderr, /refusing -o/);
});

test("--base none: what the short round did not show (mkdir of base/pgsql_tmp, PL/Python's ioctl, getuid, clone, pipe2, the archiver's execve) is allowed or logged in every context", { skip, timeout: 300_000 }, async () => {
  const c = await peerCluster(15);
  const out = writePolicy("", "learned-none.conf");
  const r = cli(["learn", "-o", out, "--base", "none", "--no-timers", "--no-crash-round", "--workload", "psql -X -c 'select 1'"], c);
  assert.equal(r.status, 2, r.stderr.slice(-3000));
  const { loadPolicyFile } = await import("../src/policy/policy.js");
  const { contextDecisions, decisionFor } = await import("../src/policy/decision.js");
  const { syscallNumber } = await import("../src/syscalls/index.js");
  const { withoutPresets } = await import("../src/policy/harden.js");
  // The lists (the hardening presets add argument conditions on clone, ioctl, ... on top).
  const p = withoutPresets(loadPolicyFile(out));
  for (const context of ["session", "archiver", "checkpointer", "startup", "walsender", "autovacuum_worker"] as const) {
    const cd = contextDecisions(p, "x86_64", { context });
    for (const n of ["mkdir", "ioctl", "getuid", "clone", "pipe2", "execve", "pwritev", "wait4"]) {
      const d = decisionFor(cd, syscallNumber("x86_64", n)!);
      assert.ok(d.kind === "leaf" && (d.action.kind === "allow" || d.action.kind === "log"), `${n} in ${context}: ${d.kind === "leaf" ? d.action.kind : "conditional"}`);
    }
  }
});
