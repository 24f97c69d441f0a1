// `pg_seccomp run` with a real PostgreSQL 15 server (Debian's package), run as the postgres OS
// user, under filters the real kernel enforces.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { readFileSync, existsSync, chownSync, writeFileSync, chmodSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { destroyCluster, pgbench, postmasterPid, psql, query, waitReady, type Cluster } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, newCluster, procStatusFields, startReady, startRun, stop, waitFor, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { scaled } from "./support/time-scale.js";
import { hostArch } from "../src/syscalls/index.js";

const skip = integrationSkip();
// The machine's own starter profile: the one run picks without --policy (x86_64 here, aarch64 in the VM lab).
const ARCH = hostArch();
const PROFILE = repoPath(`profiles/postgresql-15-${ARCH}.conf`);
const profileText = readFileSync(PROFILE, "utf8");
/** The starter profile with extra lines appended (later settings win). */
const profileWith = (...lines: string[]) => writePolicy(profileText + "\n" + lines.join("\n") + "\n");

let cluster: Cluster;
before(async () => {
  if (!skip) cluster = await newCluster();
});
after(() => {
  if (cluster) destroyCluster(cluster);
});


function serverPids(pm: number): number[] {
  const kids = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[1] === String(pm);
    } catch {
      return false;
    }
  });
  return [pm, ...kids];
}

test("the server starts under the starter profile; pgbench -i and a pgbench run complete; every process is filtered and non-dumpable", { skip }, async () => {
  const s = await startReady(cluster, []);
  try {
    const pm = postmasterPid(cluster.dataDir)!;
    assert.equal(pm, s.proc.pid === undefined ? pm : pm); // postmaster.pid names the exec'd process
    const init = pgbench(cluster, ["-i", "-s", "2", "-q"]);
    assert.ok(init.ok, init.stderr);
    const run = pgbench(cluster, ["-c", "4", "-j", "2", "-t", "200"]);
    assert.ok(run.ok, run.stderr);
    assert.match(run.stdout, /number of transactions actually processed: 800\/800/);
    const pids = serverPids(pm);
    assert.ok(pids.length >= 5, `postmaster and children: ${pids}`);
    for (const pid of pids) {
      if (!existsSync(`/proc/${pid}/status`)) continue; // a backend that has just exited
      const st = procStatusFields(pid);
      assert.equal(st.NoNewPrivs, "1", `pid ${pid}`);
      assert.equal(st.Seccomp, "2", `pid ${pid}`);
      assert.equal(st.Seccomp_filters, "1", `pid ${pid}`);
      // server_dumpable = off (the default): the launcher ran prctl(PR_SET_DUMPABLE, 0) in the
      // postmaster through ptrace at its first instruction, and every child inherits it; the
      // kernel gives a non-dumpable process's /proc files to root.
      assert.equal(statSync(`/proc/${pid}/mem`).uid, 0, `pid ${pid} is non-dumpable`);
    }
    assert.equal(procStatusFields(pm).Uid!.split(/\s+/)[0], String(cluster.user.uid), "the server runs as the postgres user");
    // status reads the programs the kernel holds and finds the policy's on every process
    // (once pgbench's backends have gone, so that none exits while it is being looked at).
    await waitFor(() => query(cluster, "select count(*) from pg_stat_activity where backend_type = 'client backend' and pid <> pg_backend_pid() and application_name <> 'pg_seccomp monitor'") === "0", 20_000, "pgbench's sessions to end");
    await new Promise((r) => setTimeout(r, 300));
    const st = spawnSync(process.execPath, [BIN, "status", "-D", cluster.dataDir], { encoding: "utf8" });
    assert.equal(st.status, 0, `status: ${st.stdout}${st.stderr}`);
    assert.match(st.stdout, /\| postmaster\s+\| yes\s+\| filter\s+\|\s+1 \| yes/);
    assert.match(st.stdout, /\| checkpointer\s+\| yes\s+\| filter\s+\|\s+1 \| yes/);
    assert.match(st.stdout, /pid \d+ \(postmaster\): filter matches the policy \(\d+ syscalls checked\)/);
    assert.match(st.stdout, /\d+ processes: ok/);
  } finally {
    const r = await stop(s, "SIGTERM");
    assert.equal(r.code, 0, s.stderr());
  }
});

test("with execve in an error list, COPY ... TO PROGRAM fails with an error the client sees, and the server keeps serving", { skip }, async () => {
  const policy = profileWith("global_syscall_allow = '" + profileText.match(/global_syscall_allow = '([^']*)'/)![1]!.replace(/\bexecve, /, "") + "'", "global_syscall_error = 'execve'");
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    const r = psql(cluster, "copy (select 1) to program 'cat > /dev/null'");
    assert.equal(r.ok, false);
    assert.match(r.stderr, /ERROR:.*(program "cat > \/dev\/null" failed|could not execute|Operation not permitted|child process exited with exit code)/i);
    assert.equal(query(cluster, "select 40 + 2"), "42");
    const other = psql(cluster, "select count(*) from pg_class");
    assert.ok(other.ok, other.stderr);
  } finally {
    await stop(s);
  }
  // The supervisor logged the denied exec with the process that tried it.
  const log = readdirSync("/run/pg_seccomp").filter((n) => n.endsWith(".jsonl")).map((n) => readFileSync(join("/run/pg_seccomp", n), "utf8")).join("");
  assert.match(log, /"syscall":"execve".*"action":"error"/);
});

test("a syscall a backend needs in a kill list: that backend dies of SIGSYS, the postmaster recovers, committed rows survive", { skip }, async () => {
  // symlink (symlinkat on aarch64, which has no symlink) is what CREATE TABLESPACE does and
  // nothing at startup does.
  const symlink = ARCH === "aarch64" ? "symlinkat" : "symlink";
  const policy = profileWith("global_syscall_allow = '" + profileText.match(/global_syscall_allow = '([^']*)'/)![1]!.replace(new RegExp(`\\b${symlink}, `), "") + "'", `global_syscall_kill = '@obsolete, @mount, ${symlink}'`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, "create table if not exists survivors (id int primary key); truncate survivors; insert into survivors select generate_series(1, 1000)");
    const tsDir = join(cluster.root, `ts-${Date.now()}`);
    spawnSync("mkdir", [tsDir]);
    chownSync(tsDir, cluster.user.uid, cluster.user.gid);
    const r = psql(cluster, `create tablespace t_${Date.now()} location '${tsDir}'`);
    assert.equal(r.ok, false, "the backend must die");
    assert.match(r.stderr, /server closed the connection unexpectedly|terminated abnormally/);
    // The postmaster restarts its children after crash recovery and serves again.
    await waitReady(cluster, s.alive, scaled(60_000));
    await waitFor(() => psql(cluster, "select 1").ok, 60_000, "recovery");
    assert.equal(query(cluster, "select count(*) from survivors"), "1000");
    // The postmaster's log reaches us through a pipe: give it a moment under load.
    await waitFor(() => /was terminated by signal 31: Bad system call/.test(s.stderr()), 15_000, "the postmaster's log of the SIGSYS");
  } finally {
    await stop(s);
  }
});

test("a policy that denies what the postmaster needs to start fails fast, naming the syscall", { skip }, async () => {
  const allow = profileText.match(/global_syscall_allow = '([^']*)'/)![1]!;
  // error: the supervisor sees the denied call and names it.
  const denyBind = profileWith(`global_syscall_allow = '${allow.replace(/\bbind, /, "")}'`, "global_syscall_error = 'bind'");
  const t0 = Date.now();
  const a = startRun(cluster, ["--policy", denyBind]);
  const ra = await a.exited;
  assert.notEqual(ra.code, 0);
  assert.ok(Date.now() - t0 < scaled(30_000), "fails fast");
  assert.match(a.stderr(), /pg_seccomp: the policy denied:\npg_seccomp:\s+bind \(error EPERM\) in the postmaster/);
  // kill: the kernel kills the postmaster; the launcher names the call from the kernel's log.
  const killListen = profileWith(`global_syscall_allow = '${allow.replace(/\blisten, /, "")}'`, "global_syscall_kill = 'listen'");
  const b = startRun(cluster, ["--policy", killListen]);
  const rb = await b.exited;
  assert.equal(rb.signal, "SIGSYS", b.stderr());
  assert.match(b.stderr(), /the postmaster was killed by the seccomp filter \(SIGSYS\): it made a syscall the policy kills(: listen| \(run as root)/);
});

test("bad policies and unsafe permissions are refused before postgres starts", { skip }, async () => {
  const pidFile = join(cluster.dataDir, "postmaster.pid");
  // (A stale postmaster.pid may remain from the SIGSYS test; it must not change.)
  const pidFileNow = () => (existsSync(pidFile) ? readFileSync(pidFile, "utf8") : "");
  const refuse = (args: string[], re: RegExp) => {
    const before = pidFileNow();
    const r = spawnSync(process.execPath, [BIN, "run", ...args, "--", join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { encoding: "utf8" });
    assert.notEqual(r.status, 0, r.stderr);
    assert.match(r.stderr, re);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
    assert.equal(pidFileNow(), before, "postgres must not have started");
  };
  refuse(["--policy", writePolicy("global_syscall_default = 'error'\nglobal_syscall_allow = 'read, opennat'\n")], /:2:31: unknown syscall "opennat"; did you mean "openat"\?/);
  const worldWritable = writePolicy(profileText);
  chmodSync(worldWritable, 0o666);
  refuse(["--policy", worldWritable], /refusing the policy[\s\S]*is world-writable/);
  const ownedByPostgres = writePolicy(profileText);
  chownSync(ownedByPostgres, cluster.user.uid, cluster.user.gid);
  refuse(["--policy", ownedByPostgres], /owned by the server's user postgres/);
  const inData = join(cluster.dataDir, "seccomp.conf");
  writeFileSync(inData, profileText, { mode: 0o644 });
  refuse(["--policy", inData], /is inside the data directory/);
  const included = writePolicy(profileText + "\ninclude 'more.conf'\n", "includer.conf");
  writePolicy("# extra\n", "more.conf");
  chmodSync(included.replace("includer.conf", "more.conf"), 0o664);
  refuse(["--policy", included], /more.conf: file is group-writable/);
  // --insecure-policy-permissions says so loudly and then starts.
  const s = startRun(cluster, ["--policy", worldWritable, "--insecure-policy-permissions"]);
  await waitReady(cluster, s.alive, scaled(60_000));
  assert.match(s.stderr(), /WARNING: --insecure-policy-permissions/);
  await stop(s);
});

test("signals behave as with postgres itself: SIGHUP reloads, SIGINT and SIGQUIT shut down, pg_ctl stop works", { skip }, async () => {
  let s = await startReady(cluster, []);
  try {
    writeFileSync(join(cluster.dataDir, "postgresql.auto.conf"), "work_mem = '7MB'\n");
    s.proc.kill("SIGHUP");
    await waitFor(() => query(cluster, "show work_mem") === "7MB", 20_000, "reload");
  } finally {
    const r = await stop(s, "SIGINT");
    assert.equal(r.code, 0);
    writeFileSync(join(cluster.dataDir, "postgresql.auto.conf"), "");
  }
  s = await startReady(cluster, []);
  const rq = await stop(s, "SIGQUIT");
  assert.equal(rq.signal, null, "the launcher exits as the postmaster does after an immediate shutdown");
  assert.equal(existsSync(join(cluster.dataDir, "postmaster.pid")), false);
  s = await startReady(cluster, []);
  const ctl = spawnSync("runuser", ["-u", cluster.user.name, "--", join(cluster.binDir, "pg_ctl"), "stop", "-D", cluster.dataDir, "-m", "fast"], { encoding: "utf8" });
  assert.equal(ctl.status, 0, ctl.stderr);
  const r = await s.exited;
  assert.equal(r.code, 0);
});

test("run --check validates and prints what would be installed, starting nothing", { skip }, () => {
  const r = spawnSync(process.execPath, [BIN, "run", "--check", "--", join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`policy:\\s+.*profiles/postgresql-15-${ARCH}\\.conf`));
  assert.match(r.stdout, /filter:\s+\d+ BPF instructions/);
  assert.match(r.stdout, /nothing started/);
  assert.equal(existsSync(join(cluster.dataDir, "postmaster.pid")), false);
});

test("run refuses a pgseccomp policy that would install no filter unless it says pgseccomp.enabled = off", { skip }, () => {
  const settings = "pgseccomp.global_syscall_default = 'allow'\npgseccomp.global_syscall_error = 'mount'\n";
  const check = (text: string) => spawnSync(process.execPath, [BIN, "run", "--check", "--policy", writePolicy(text), "--", join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { encoding: "utf8" });
  const unsaid = check(settings);
  assert.notEqual(unsaid.status, 0, unsaid.stdout);
  assert.match(unsaid.stderr, /^pg_seccomp: error: refusing the policy: .* would install no filter: it has pgseccomp settings but does not set pgseccomp.enabled, which pgseccomp reads as off\n(pg_seccomp: )?hint: add "pgseccomp.enabled = on"/m);
  assert.doesNotMatch(unsaid.stderr, /sets seccomp = off/, "it does not say the policy turned it off");
  assert.doesNotMatch(unsaid.stderr, /\n\s+at /, "no stack trace");
  const said = check("pgseccomp.enabled = off\n" + settings);
  assert.equal(said.status, 0, said.stderr);
  assert.match(said.stdout + said.stderr, /without a filter|filter:\s+none/);
});
