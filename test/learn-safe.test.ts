// Issue 17's done-criterion, end to end, on every major 14-18 (Debian's 15, the embedded builds of
// the others): a policy made by the documented learn procedure (docs/profiles.md, "Learning a
// policy for your server": the `sh test=learn-safe` block, read from the Markdown, so the test
// runs the procedure as written: learn with the defaults on 10 s of pgbench, learn --verify with
// its standard set, run under the result) keeps a server alive through what the 10 s never
// showed. Nothing may be killed (no "signal 31" / "exit code 159" / PANIC in the server log) and
// nothing denied (the violation logs hold no error, trap or kill; the unfiltered server denies
// none of these steps, so "nothing denied that it does not" is "nothing denied").
//
// What each major gets, and why (CI's budget: `npm test` has about 25 minutes; each learn costs
// about 70 s whatever the workload, as its timers (a timed checkpoint: checkpoint_timeout's
// minimum is 30 s) and crash round are waited out, and verify as much again):
// - 15, the full round: learn, learn --verify (its standard set: WAL burst, CREATE DATABASE, temp
//   files, base backup, archiver round), then under the policy `pg_basebackup -R` (the walsender's
//   BASE_BACKUP), `pgbench -i -s 10`, archiving with `zstd -q -f %p -o`, a streaming standby under
//   the same policy started from the backup once the archive holds those segments, so that its
//   startup process restores them with `zstd -d ... -o %p` (restore_command) before it streams,
//   and a backend killed (crash recovery); then test/support/kill-workloads.ts's full set under
//   it (unix_socket_group, every archive tool Debian packages and pgBackRest, archiving and
//   restoring, cp -p / cp -a, dblink with a KEYRING: cache, chown in plperlu). 15 is Debian's build (GSSAPI, LLVM, 42 libraries of
//   the system) and the only one whose pg_basebackup speaks to its walsender.
// - 14, 16, 17 and 18 (the embedded builds), the core: learn as documented and run under the
//   result through a base backup (the low-level backup over SQL on 16+, Debian's pg_basebackup
//   being older), `pgbench -i -s 10`, archiving with zstd and crash recovery, then kill-workloads.ts's short set (unix_socket_group,
//   gzip, zstd and cp -a archiving and restoring, dblink with a KEYRING: cache). No verify (it
//   re-checks the file learn wrote; 15 shows it passing) and no standby (restoring and streaming
//   are the startup process and the walreceiver, which crash recovery and 15 exercise): what
//   differs between majors is the server's own calls, which learn and these steps exercise.
// The five learns run side by side (before(): a learn mostly waits out its timers and crash
// round), then each major's steps 2 and 3 in turn. Measured on this 2-core machine, quiet: each
// learn 81-85 s side by side (70 s alone), the whole file 267 s; run one after another it took
// about 555 s (14: 84 s, 15: 177 s, 16-18: 81-82 s each).
//
// Also: a failing workload makes learn fail and leaves the output as it was; -o may not be the
// --merge input without --force; -o in a directory the server's user can write is refused at
// the start; a policy missing a call the postmaster needs fails verify with the call named.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chownSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, freePort, postgresArgs, type Cluster } from "../src/postgres/cluster.js";
import type { ViolationEvent } from "../src/host/violation-event.js";
import { BIN, integrationSkip, logFile, startReady, stop, waitFor, writePolicy, type RunningServer } from "./support/server.js";
import { majors } from "./support/majors.js";
import { blocksTestedBy } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { policySizes, recallAgainst, straceSeen } from "../scripts/profile/profile-sizes.js";
import { runKillWorkloads } from "./support/kill-workloads.js";

const skip = integrationSkip();

/**
 * docs/profiles.md's procedure (the `sh test=learn-safe` block), as pg_seccomp's arguments before
 * `--`: learn, learn --verify, run. The policy's path is the docs' (replaced by the test's file);
 * the postgres command line after `--` is the docs' Debian cluster (replaced by the test's).
 */
function documentedProcedure(): { learn: string[]; verify: string[]; run: string[] } {
  const blocks = blocksTestedBy("learn-safe");
  assert.equal(blocks.length, 1, "docs/profiles.md has one test=learn-safe block");
  const commands = blocks[0]!.body.replace(/\\\n\s*/g, "").split("\n").filter((l) => l.startsWith("pg_seccomp "));
  const words = (l: string) => [...l.split(" -- ")[0]!.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!).slice(1);
  const [learn, verify, run] = commands.map(words);
  assert.ok(learn && verify && run && commands.length === 3, blocks[0]!.body);
  assert.deepEqual([learn[0], verify.slice(0, 2), run.slice(0, 2)], ["learn", ["learn", "--verify"], ["run", "--policy"]], blocks[0]!.body);
  return { learn, verify, run };
}
const PROCEDURE = documentedProcedure();
/** The procedure's arguments with the docs' policy path replaced by `out`. */
const withOut = (args: string[], out: string) => args.map((a) => (a === "/etc/pg_seccomp/learned.conf" ? out : a));

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

/** What the archiver last did, for a failure's message: a backup that waits on archiving says only that it waits. */
function archiverState(c: Cluster): string {
  const r = asServer(c, `psql -X -qAt -c "select format('archived %s, last %s; failed %s, last %s at %s', archived_count, last_archived_wal, failed_count, last_failed_wal, last_failed_time) from pg_stat_archiver"`, 30_000);
  return `pg_stat_archiver: ${r.stdout.trim()}${r.stderr}`;
}

/** A base backup of `primary` for a standby: pg_basebackup -R, or the low-level backup over SQL when pg_basebackup is older than the server. */
function baseBackup(primary: Cluster): { standby: Cluster; how: string } {
  const root = serverDir(primary, "pg_seccomp-standby-");
  const dataDir = join(root, "data");
  const b = asServer(primary, `pg_basebackup -D ${dataDir} -X stream -R -c fast --no-sync`);
  let how = "pg_basebackup -R";
  if (b.status !== 0) {
    assert.match(b.stderr, /incompatible server version/, `${b.stderr}\n${archiverState(primary)}`);
    how = "the low-level backup over SQL";
    const start = "select pg_backup_start('standby', true)";
    const stopQ = "select labelfile from pg_backup_stop(true)";
    const copy = `mkdir -m 700 ${dataDir} && tar -C ${primary.dataDir} --exclude=./pg_wal/* --exclude=./postmaster.pid --exclude=./postmaster.opts -cf - . | tar -C ${dataDir} -xf -`;
    const r = asServer(primary, `psql -X -qAt <<'SQL'\n${start};\n\\! ${copy}\n\\o ${root}/backup_label\n${stopQ};\n\\o\nSQL\ncp ${root}/backup_label ${dataDir}/backup_label && touch ${dataDir}/standby.signal && echo "primary_conninfo = 'host=${primary.socketDir} port=${primary.port} user=postgres'" >> ${dataDir}/postgresql.auto.conf`);
    assert.equal(r.status, 0, `${r.stderr}\n${archiverState(primary)}`);
  }
  const socketDir = join(root, "sock");
  mkdirSync(socketDir);
  chownSync(socketDir, primary.user.uid, primary.user.gid);
  return { standby: { ...primary, root, dataDir, socketDir, port: 0 }, how };
}

/** A backend killed with SIGKILL: the postmaster's in-place crash restart and recovery; then a checkpoint. */
async function crashRecovery(c: Cluster): Promise<void> {
  const victim = spawn("sh", ["-c", "psql -X -qAt -c 'select pg_sleep(600)'"], {
    uid: c.user.uid, gid: c.user.gid, stdio: "ignore",
    env: { PATH: `${c.binDir}:/usr/bin:/bin`, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres", HOME: "/" },
  });
  let pid = "";
  await waitFor(() => (pid = sql(c, "select pid from pg_stat_activity where query = 'select pg_sleep(600)'")) !== "", 60_000, "the sleeping backend");
  process.kill(Number(pid), "SIGKILL");
  await new Promise((res) => victim.on("exit", res));
  await waitFor(() => asServer(c, "psql -X -qAt -c 'select 1'", 10_000).stdout.trim() === "1", 120_000, "the server back after crash recovery");
  sql(c, "CHECKPOINT");
}

// The archive: zstd writing a named file (fchown: issue 17's killed archive tools), and reading it back into %p.
// -f: a segment archived just before a crash (learn's crash round) is archived again after it; without
// -f zstd refuses the existing file and the archiver retries it forever (a base backup then waits on it).
const archiveCommand = (dir: string) => `zstd -q -f %p -o ${dir}/%f.zst`;
const restoreCommand = (dir: string) => `zstd -q -d -f ${dir}/%f.zst -o %p`;
const FULL_ROUND = new Set([15]);

/**
 * pg_seccomp with `args` on `cluster`, not blocking: its output goes to files, not pipes (a test's
 * spawnSync blocks this process's event loop meanwhile, and an undrained pipe would stop the
 * child), read when it exits.
 */
function cliAsync(args: string[], cluster: Cluster, timeout = 600_000): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-learn-out-"));
  dirs.push(dir);
  const [o, e] = [openSync(join(dir, "stdout"), "w"), openSync(join(dir, "stderr"), "w")];
  const p = spawn(process.execPath, [BIN, ...args, "--", ...postgresArgs(cluster)], { stdio: ["ignore", o, e] });
  closeSync(o);
  closeSync(e);
  const timer = setTimeout(() => p.kill("SIGKILL"), timeout);
  return new Promise((resolve) =>
    p.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ status: code, stdout: readFileSync(join(dir, "stdout"), "utf8"), stderr: readFileSync(join(dir, "stderr"), "utf8") });
    }),
  );
}

interface Round {
  primary: Cluster;
  archive: string;
  out: string;
  t0: number;
  learn: Promise<{ status: number | null; stdout: string; stderr: string; seconds: number }>;
}

/**
 * Step 1 of every major's round, started together before the tests: a learn mostly waits (a timed
 * checkpoint: checkpoint_timeout's minimum is 30 s; the crash round), so five side by side take
 * about as long as one or two, not five (CI's budget). Each has its own cluster, port, run state
 * and violation log; a learner attributes kernel records only to its own server's processes.
 */
async function startRound(major: number): Promise<Round> {
  const t0 = Date.now();
  const archive = mkdtempSync(join(tmpdir(), "pg_seccomp-archive-"));
  dirs.push(archive);
  const primary = await peerCluster(major, ["archive_mode = on", `archive_command = '${archiveCommand(archive)}'`]);
  chownSync(archive, primary.user.uid, primary.user.gid);
  const out = writePolicy("", `learned-${major}.conf`);
  const learn = cliAsync(withOut(PROCEDURE.learn, out), primary).then((r) => ({ ...r, seconds: (Date.now() - t0) / 1000 }));
  return { primary, archive, out, t0, learn };
}
const rounds = new Map<number, Promise<Round>>();
before(() => {
  for (const m of majors()) {
    if (skip || m.skip) continue;
    const round = startRound(m.major);
    round.catch(() => undefined); // reported by the major's own test, which awaits it
    rounds.set(m.major, round);
  }
});
/** The policy 15's round learned: the verify-failure test below takes it. */
let learned15: string | undefined;

for (const m of majors()) {
  const full = FULL_ROUND.has(m.major);
  test(
    full
      ? `PostgreSQL ${m.major}: the documented learn procedure on 10 s of pgbench; under its policy pg_basebackup, pgbench -i -s 10, archiving with zstd, a standby restoring from that archive with zstd -d, crash recovery, unix_socket_group, every archive tool, KEYRING, plperlu chown: nothing killed, nothing denied`
      : `PostgreSQL ${m.major}: the documented learn procedure on 10 s of pgbench; under its policy a base backup, pgbench -i -s 10, archiving with zstd, crash recovery, unix_socket_group, gzip/zstd/cp -a archive and restore, KEYRING: nothing killed, nothing denied`,
    { skip: skip || m.skip, timeout: 1_200_000 },
    async (t) => {
      // 1. learn, as docs/profiles.md shows it (started with the other majors' in before()).
      const { primary, archive, out, learn } = await rounds.get(m.major)!;
      const r = await learn;
      const t0 = Date.now() - r.seconds * 1000;
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
      // docs/profiles.md's counts for it (sizes.js --policy): nothing reachable killed, and every
      // call strace saw of the broad workload (the bundled profile's strace rounds) allowed or logged.
      const sizes = policySizes(text, "x86_64");
      assert.deepEqual(sizes.killedReachable, [], "reachable calls killed");
      const reference = straceSeen(readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8"));
      assert.ok(reference && reference.size > 50, "the bundled profile records its strace rounds");
      const recall = recallAgainst(sizes, reference);
      assert.deepEqual([...recall.denied, ...recall.killed], [], "calls of the broad workload the learned policy does not let run");
      t.diagnostic(`learned ${m.major}: allowed ${sizes.allowed.length} (seen ${sizes.seen.length}), logged ${sizes.logged.length} (of killed groups ${sizes.loggedOfKilledGroups.length}), denied by name ${sizes.deniedByName.length}, by default ${sizes.deniedByDefault}, killed ${sizes.killed.length} (reachable ${sizes.killedReachable.length}); recall against strace of the broad workload ${recall.allowed.length + recall.logged.length}/${recall.reference}`);
      if (m.major === 15) learned15 = out;
      const learnS = (Date.now() - t0) / 1000;

      // 2. verify, with its standard set (the full round only).
      if (full) {
        const v = cli(withOut(PROCEDURE.verify, out), primary);
        assert.equal(v.status, 0, `${v.stdout}\n${v.stderr.slice(-5000)}`);
        assert.match(v.stdout, /^verify: passed/m);
        for (const step of ["WAL burst past max_wal_size", "CREATE DATABASE", "temp-file spill", "base backup", "archiver round"]) {
          assert.match(v.stderr, new RegExp(`standard set: ${step}[^\\n]*: done`), step);
        }
      }
      const verifyS = (Date.now() - t0) / 1000 - learnS;

      // 3. run under it (the docs' `run --policy FILE`, with a violation log of the test's): what the 10 s never showed.
      const log = logFile(`learned-run-${m.major}.jsonl`);
      const standbyLog = logFile(`learned-standby-${m.major}.jsonl`);
      const s = await startReady(primary, [...withOut(PROCEDURE.run, out).slice(1), "--log", log]);
      let sb: RunningServer | undefined;
      try {
        const { standby, how } = baseBackup(primary);
        const i = asServer(primary, "pgbench -i -q -s 10", 600_000);
        assert.equal(i.status, 0, i.stderr);
        const seg = sql(primary, "select pg_walfile_name(pg_switch_wal())");
        await waitFor(() => sql(primary, "select coalesce(last_archived_wal, '') from pg_stat_archiver") >= seg, 120_000, `${seg} archived`);
        assert.equal(sql(primary, "select failed_count from pg_stat_archiver"), "0");
        assert.ok(existsSync(join(archive, `${seg}.zst`)), `zstd wrote ${seg}.zst`);
        if (full) {
          // The standby starts after pgbench -i -s 10 was archived: its startup process restores
          // those segments with zstd -d (archive recovery reads the archive first), then streams.
          standby.port = await freePort();
          writeFileSync(join(standby.dataDir, "postgresql.auto.conf"),
            `\nport = ${standby.port}\nunix_socket_directories = '${standby.socketDir}'\narchive_mode = off\nrestore_command = '${restoreCommand(archive)}'\n`, { flag: "a" });
          chownSync(join(standby.dataDir, "postgresql.auto.conf"), primary.user.uid, primary.user.gid);
          sb = await startReady(standby, [...withOut(PROCEDURE.run, out).slice(1), "--log", standbyLog]);
          await waitFor(() => sql(standby, "select count(*) from pgbench_accounts") === "1000000", 180_000, `the standby replaying pgbench -i -s 10 (${how})`);
          assert.match(sb.stderr(), /restored log file "[0-9A-F]{24}" from archive/, sb.stderr().slice(-3000));
          await waitFor(() => sql(primary, "select count(*) from pg_stat_replication where state = 'streaming'") === "1", 60_000, `the standby streaming (${how})`);
        }
        await crashRecovery(primary);
      } finally {
        if (sb) await stop(sb);
        await stop(s);
      }
      // 4. Under the same learned policy, the workloads that killed servers and their programs
      // (test/profile-kills.test.ts runs them under the bundled profiles): unix_socket_group,
      // archive and restore commands with each compressor (15; gzip, zstd and cp -a on the
      // others), cp -p and cp -a, dblink with a KEYRING: credential cache, chown in plperlu (15).
      // The 10 s of pgbench showed none of them.
      await runKillWorkloads({ binDir: primary.binDir, major: m.major, policy: readFileSync(out, "utf8"), label: `learned-kills-${m.major}`, full });
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
  // The policy 15's round learned (one learn fewer), else a short round of its own.
  let out = learned15;
  if (!out) {
    out = writePolicy("", "learned-short.conf");
    const r = cli(["learn", "-o", out, "--no-timers", "--no-crash-round", "--workload", "psql -X -c 'select 1'"], c);
    assert.equal(r.status, 2, r.stderr.slice(-3000));
  }
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
