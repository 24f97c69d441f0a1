// Debian's way, for real: a cluster made with pg_createcluster (config in /etc/postgresql/15/NAME,
// data in /var/lib/postgresql/15/NAME), its pg_ctl.conf naming the wrapper
// (contrib/pg_ctl/postgres-seccomp), and pg_ctlcluster start|reload|restart|stop run unchanged,
// as root (it drops to postgres and runs pg_ctl, which runs the wrapper). Each step ends with every
// server process filtered (pg_seccomp status) or the server cleanly stopped; `status`, `log` and
// `sql install` find the cluster by --cluster 15/NAME and by its configuration directory, as
// root and as postgres, while it runs and after it stopped. The commands are the docs' own
// (README's Deploying block, docs/deploy.md's pg_ctlcluster and sql install blocks, `test=debian`),
// read from the Markdown and run line by line as written, with only the cluster name and the
// install directories substituted (docCommands says which).
//
// Here systemd is not running, so pg_ctlcluster does not hand start/stop to systemctl; under
// systemd, as root, it would (docs/deploy.md: the postgresql@ unit runs pg_ctlcluster too).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { appendFileSync, chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPgBinDir, freePort, lookupUser, type OsUser } from "../src/postgres/cluster.js";
import { seccompSupport } from "../src/kernel/index.js";
import { blocksTestedBy, type DocBlock } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { procStatusFields } from "./support/server.js";

const BIN = repoPath("dist/src/cli/main.js");
const WRAPPER = repoPath("contrib/pg_ctl/postgres-seccomp");
const PROFILE = repoPath("profiles/postgresql-15-x86_64.conf");

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return "needs root (pg_createcluster, pg_ctlcluster)";
  if (!existsSync("/usr/bin/pg_createcluster") || !existsSync("/usr/bin/pg_ctlcluster")) return "postgresql-common is not installed";
  try {
    findPgBinDir(15);
  } catch {
    return "PostgreSQL 15 is not installed";
  }
  if (existsSync("/run/systemd/system")) return "systemd runs here: pg_ctlcluster would hand start/stop to systemctl";
  const s = seccompSupport();
  return s.ok ? false : `seccomp unavailable: ${s.reason}`;
}
const skip = skipReason();

const NAME = `psc${process.pid}`;
const CONF_DIR = `/etc/postgresql/15/${NAME}`;
let dataDir = "";
let port = 0;
let policyDir = "";
let policy = "";
/** The docs' /usr/local/lib/pg_seccomp and /etc/pg_seccomp, made by their `install -d`. */
let libDir = "";
let etcDir = "";
/** `pg_seccomp` on PATH for the docs' commands: this checkout's CLI. */
let shimDir = "";
let pg: OsUser;
let created = false;

function run(cmd: string, args: string[], opts: { as?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const argv = opts.as ? ["runuser", "-u", opts.as, "--", cmd, ...args] : [cmd, ...args];
  return spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", timeout: 180_000, cwd: "/", env: opts.env ?? process.env });
}

const cli = (args: string[], as?: string) =>
  run(process.execPath, [BIN, ...args], as ? { as, env: { PATH: process.env.PATH ?? "/usr/bin:/bin" } } : {});

const ctl = (action: string) => run("pg_ctlcluster", ["15", NAME, action]);

function psqlAsPostgres(sql: string): SpawnSyncReturns<string> {
  return run(join(findPgBinDir(15), "psql"), ["-X", "-A", "-t", "-h", "/var/run/postgresql", "-p", String(port), "-d", "postgres", "-c", sql], { as: "postgres" });
}

function postmasterPid(): number | undefined {
  try {
    const pid = Number(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    return pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

const serverLog = () => {
  try {
    return readFileSync(`/var/log/postgresql/postgresql-15-${NAME}.log`, "utf8");
  } catch {
    return "";
  }
};

/** `pg_seccomp status --cluster 15/NAME --json`: every server process filtered as the policy says. */
function assertAllFiltered(pid: number): void {
  const r = cli(["status", "--cluster", `15/${NAME}`, "--json"]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  const report = JSON.parse(r.stdout) as { postmasterPid: number; ok: boolean; policyPath: string | null; processes: Array<{ pid: number; seccompMode: string; matchesPolicy: string }> };
  assert.equal(report.postmasterPid, pid);
  assert.equal(report.ok, true);
  assert.equal(report.policyPath, policy, "status finds the policy from the record the launcher (run as postgres) keeps");
  assert.ok(report.processes.length >= 5, `postmaster and its auxiliary processes: ${report.processes.length}`);
  for (const p of report.processes) {
    assert.equal(p.seccompMode, "filter", `pid ${p.pid} is filtered`);
    assert.match(p.matchesPolicy, /^yes/, `pid ${p.pid} has the policy's filter`);
  }
}

async function waitGone(pid: number, ms = 20_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (existsSync(`/proc/${pid}`) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  return !existsSync(`/proc/${pid}`);
}

function supervisorOf(postmaster: number): number | undefined {
  try {
    return (JSON.parse(readFileSync(`/tmp/pg_seccomp-${pg.uid}/${postmaster}.json`, "utf8")) as { launcherPid: number }).launcherPid;
  } catch {
    return undefined;
  }
}

before(async () => {
  if (skip) return;
  pg = lookupUser("postgres");
  port = await freePort();
  policyDir = mkdtempSync(join(tmpdir(), "pg_seccomp-debian-"));
  chmodSync(policyDir, 0o755);
  policy = join(policyDir, "postgresql-15.conf");
  // The starter profile: global lists only (pg_ctlcluster runs the wrapper as postgres, and
  // run --in-place as the server's user refuses per-context policies). mkfifo is logged by it.
  writeFileSync(policy, readFileSync(PROFILE, "utf8") + "\nset_client_filter = on\n", { mode: 0o644 });
  chmodSync(policy, 0o644);
  const r = run("pg_createcluster", ["15", NAME, "-p", String(port), "--start-conf", "manual"]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  created = true;
  dataDir = `/var/lib/postgresql/15/${NAME}`;
  // The docs' commands (the test's first test) write pg_ctl.conf, naming the wrapper they
  // install in libDir. The environment file points it at this checkout's pg_seccomp and the
  // test's policy (an installed pg_seccomp and /etc/pg_seccomp/postgresql-15.conf, which the
  // docs' commands install into etcDir, are the defaults).
  libDir = join(policyDir, "usr-local-lib-pg_seccomp");
  shimDir = join(policyDir, "bin");
  mkdirSync(shimDir);
  writeFileSync(join(shimDir, "pg_seccomp"), `#!/bin/sh\nexec "${process.execPath}" "${BIN}" "$@"\n`, { mode: 0o755 });
  etcDir = join(policyDir, "etc-pg_seccomp");
  appendFileSync(join(CONF_DIR, "environment"), `PG_SECCOMP = '${process.execPath} ${BIN}'\nPG_SECCOMP_POLICY = '${policy}'\n`);
});

after(() => {
  if (created) run("pg_dropcluster", ["15", NAME, "--stop"]);
  if (policyDir) rmSync(policyDir, { recursive: true, force: true });
});

/**
 * The blocks of README.md and docs/deploy.md marked `test=debian`, by what they do; each is run by
 * one of the tests below, and a block none of them knows fails here.
 */
function debianBlocks(): { readme: DocBlock; ctl: DocBlock; sql: DocBlock; policy: DocBlock; runs: DocBlock[] } {
  const blocks = blocksTestedBy("debian");
  const pick = (what: string, match: (b: DocBlock) => boolean): DocBlock[] => {
    const found = blocks.filter(match);
    assert.ok(found.length > 0, what);
    return found;
  };
  const readme = pick("README's Deploying block", (b) => b.file === "README.md" && /pg_ctl\.conf/.test(b.body));
  const ctl = pick("deploy.md's pg_ctlcluster block", (b) => /^pg_ctlcluster 15 main start$/m.test(b.body));
  const sql = pick("deploy.md's sql install block", (b) => /^pg_seccomp sql install [^\n]*\n$/.test(b.body));
  const policy = pick("deploy.md's policy install block", (b) => /^install .* \/etc\/pg_seccomp\/15-main\.conf$/m.test(b.body));
  const runs = pick("the root launcher's command line", (b) => /^pg_seccomp run --policy /.test(b.body));
  const used = [readme, ctl, sql, policy, runs].flat();
  assert.deepEqual(blocks.filter((b) => !used.includes(b)).map((b) => `${b.file}:${b.line}`), [], "test=debian blocks no test here runs");
  assert.equal(used.length, new Set(used).size, "each block has one role");
  assert.ok(readme.length === 1 && ctl.length === 1 && sql.length === 1 && policy.length === 1);
  return { readme: readme[0]!, ctl: ctl[0]!, sql: sql[0]!, policy: policy[0]!, runs };
}

/**
 * A doc command as this machine runs it. The only substitutions: the cluster `15/main`
 * (`15 main`) is this test's own `15/NAME`, /usr/local/lib/pg_seccomp and /etc/pg_seccomp are
 * temporary directories, `$(npm root -g)/pg_seccomp` (the installed package) and `pg_seccomp`
 * (its command, through a shim on PATH: shimEnv) are this checkout, and the reader's own
 * my-policy.conf is the test's policy. The cluster's environment file (written in before())
 * points the wrapper at this checkout's pg_seccomp and the test's policy.
 */
const substitute = (text: string) =>
  text
    .replaceAll("/usr/local/lib/pg_seccomp", libDir)
    .replaceAll("/etc/pg_seccomp", etcDir)
    .replaceAll('"$(npm root -g)/pg_seccomp/', `"${repoPath(".")}/`)
    .replaceAll("my-policy.conf", policy)
    .replaceAll("15/main", `15/${NAME}`)
    .replaceAll("15 main", `15 ${NAME}`);

const shimEnv = () => ({ ...process.env, PATH: `${shimDir}:${process.env.PATH ?? "/usr/bin:/bin"}` });

/** The blocks' commands, one a line, substituted. */
function docCommands(...blocks: DocBlock[]): Array<{ where: string; line: string }> {
  return blocks.flatMap((b) =>
    b.body
      .split("\n")
      .map((l, i) => ({ where: `${b.file}:${b.line + 1 + i}`, line: l }))
      .filter((c) => c.line.trim() !== "")
      .map((c) => ({ where: c.where, line: substitute(c.line) })),
  );
}

test("the docs' pg_ctlcluster path, as written: install, pg_ctl.conf, start, reload, restart, stop through the wrapper: filtered throughout, status/log/sql install by --cluster", { skip }, async () => {
  const env = shimEnv();
  const docs = debianBlocks();
  // README's block installs and (re)starts; the sql install block needs the server running;
  // deploy.md's pg_ctlcluster block starts it again and ends with it stopped.
  const commands = docCommands(docs.readme, docs.sql, docs.ctl);
  const seen = new Set<string>();
  let pm: number | undefined;
  let sup: number | undefined;
  let fifoN = 0;

  /** A logged call, for the log: mknodat (the starter profile's global log list) from mkfifo. */
  const mkfifo = () => {
    const fifo = join(tmpdir(), `pg_seccomp-debian-fifo-${process.pid}-${fifoN++}`);
    const mk = psqlAsPostgres(`copy (select 1) to program 'cat > /dev/null; mkfifo ${fifo}; rm -f ${fifo}'`);
    assert.equal(mk.status, 0, mk.stderr);
    assert.equal(psqlAsPostgres("select 40 + 2").stdout.trim(), "42");
  };
  const started = (what: string) => {
    pm = postmasterPid();
    assert.ok(pm, `${what}: postmaster.pid`);
    const st = procStatusFields(pm);
    assert.equal(st.Seccomp, "2");
    assert.equal(st.NoNewPrivs, "1");
    assert.equal(st.Uid!.split(/\s+/)[0], String(pg.uid));
    assert.match(readFileSync(`/proc/${pm}/cmdline`, "utf8"), /\/usr\/lib\/postgresql\/15\/bin\/postgres\0-D\0/, "the wrapper found PostgreSQL 15's postgres from PG_VERSION");
    assert.match(run("pg_lsclusters", ["15", NAME, "--no-header"]).stdout, /online/);
    assertAllFiltered(pm);
    // The launcher keyed its records by the real data directory; the spool is in it, not in /etc.
    assert.ok(existsSync(join(dataDir, "pg_seccomp")), "set_client_filter's spool in the data directory");
    assert.equal(existsSync(join(CONF_DIR, "pg_seccomp")), false);
    sup = supervisorOf(pm);
    assert.ok(sup, "the supervisor's run state, in the postgres user's run-state directory");
    mkfifo();
  };

  try {
    for (const [i, { where, line }] of commands.entries()) {
      const wasRunning = postmasterPid();
      const r = spawnSync("sh", ["-c", line], { encoding: "utf8", timeout: 180_000, cwd: "/", env });
      const out = r.stdout + r.stderr;
      assert.equal(r.status, 0, `${where}: ${line}\n${out}${serverLog()}`);
      const kind = /^install -d /.test(line) ? "install -d" : /^install .*postgres-seccomp/.test(line) ? "install wrapper" : /^install .*\.conf$/.test(line) ? "install profile" : /^echo .*pg_ctl\.conf$/.test(line) ? "pg_ctl.conf" : /^pg_ctlcluster \S+ \S+ (\w+)$/.exec(line)?.[1] ?? /^pg_seccomp (status|log|sql install) /.exec(line)?.[1];
      assert.ok(kind, `${where}: a command this test knows how to check: ${line}`);
      seen.add(kind);
      switch (kind) {
        case "install -d":
          for (const d of [libDir, etcDir]) assert.equal(statSync(d).mode & 0o7777, 0o755, d);
          break;
        case "install wrapper":
          assert.equal(statSync(join(libDir, "postgres-seccomp")).mode & 0o7777, 0o755);
          assert.equal(readFileSync(join(libDir, "postgres-seccomp"), "utf8"), readFileSync(WRAPPER, "utf8"));
          break;
        case "install profile":
          assert.equal(readFileSync(join(etcDir, "postgresql-15.conf"), "utf8"), readFileSync(PROFILE, "utf8"));
          break;
        case "pg_ctl.conf":
          assert.equal(readFileSync(join(CONF_DIR, "pg_ctl.conf"), "utf8"), `pg_ctl_options = '-p ${libDir}/postgres-seccomp'\n`);
          break;
        case "start":
          assert.equal(wasRunning, undefined);
          started(where);
          break;
        case "reload":
          assert.equal(postmasterPid(), pm);
          assertAllFiltered(pm!);
          break;
        case "restart": {
          // pg_ctlcluster's restart is stop (when running) then start, both with pg_ctl.conf's options.
          const [oldPm, oldSup] = [wasRunning, sup];
          started(where);
          if (oldPm) {
            assert.notEqual(pm, oldPm);
            assert.ok(await waitGone(oldPm));
            assert.ok(await waitGone(oldSup!), "the old supervisor exits with its server");
          }
          break;
        }
        case "stop":
          assert.equal(existsSync(join(dataDir, "postmaster.pid")), false);
          assert.ok(await waitGone(pm!));
          assert.ok(await waitGone(sup!), "the supervisor exits with its server");
          assert.match(serverLog(), /database system is shut down/);
          assert.doesNotMatch(serverLog(), /pg_seccomp: error/);
          pm = undefined;
          break;
        case "status":
          assert.match(out, new RegExp(`${pm}`), `${where}: status names the postmaster`);
          break;
        case "log": {
          // The log is written in batches: what the mkfifo after the start did shows up shortly.
          let l = out;
          for (let n = 0; !/mknodat/.test(l) && n < 20; n++) {
            await new Promise((res) => setTimeout(res, 250));
            const again = spawnSync("sh", ["-c", line], { encoding: "utf8", cwd: "/", env });
            l = again.stdout + again.stderr;
          }
          assert.match(l, /mknodat/, `${where}: ${line}`);
          break;
        }
        case "sql install": {
          // As root: psql runs as postgres, peer authentication over the cluster's socket.
          assert.doesNotMatch(r.stderr, /warning/);
          // The functions read the launcher's table from the launcher's run-state directory: here
          // the server's user's own (pg_ctl started it), not root's, although root installed them.
          const rows = psqlAsPostgres("select filter_action from seccomp.seccomp_filter() where syscall = 'mknodat' and context = 'session'");
          assert.equal(rows.status, 0, rows.stderr);
          assert.match(rows.stdout, /log/);
          if (seen.has("sql install as postgres")) break;
          seen.add("sql install as postgres");
          // ... and as postgres, by the configuration directory, and the violations it reads.
          const inst2 = cli(["sql", "install", "-D", CONF_DIR, "-d", `port=${port} host=/var/run/postgresql dbname=postgres`], "postgres");
          assert.equal(inst2.status, 0, inst2.stderr);
          await new Promise((res) => setTimeout(res, 300)); // the log is written in batches
          const v = psqlAsPostgres("select syscall from seccomp.violations where action = 'log'");
          assert.equal(v.status, 0, v.stderr);
          assert.match(v.stdout, /mknodat/);
          break;
        }
      }
      // README's block leaves the server running; deploy.md's pg_ctlcluster block starts it.
      const next = commands[i + 1];
      if (next && /pg_ctlcluster \S+ \S+ start$/.test(next.line) && postmasterPid()) {
        const stop = ctl("stop");
        assert.equal(stop.status, 0, stop.stderr);
        assert.ok(await waitGone(pm!));
      }
    }
    assert.deepEqual([...seen].sort(), ["install -d", "install profile", "install wrapper", "log", "pg_ctl.conf", "reload", "restart", "sql install", "sql install as postgres", "start", "status", "stop"]);
    if (postmasterPid()) assert.equal(ctl("stop").status, 0);
  } finally {
    if (postmasterPid()) ctl("stop");
  }

  // -- post mortem: the log is found by cluster, by config dir and by data dir, as root and as postgres.
  for (const [args, as] of [[["--cluster", `15/${NAME}`], undefined], [["-D", CONF_DIR], undefined], [["-D", dataDir], "postgres"], [["--cluster", `15/${NAME}`], "postgres"]] as const) {
    const l = cli(["log", ...args, "--jsonl"], as);
    assert.equal(l.status, 0, `${args.join(" ")} as ${as ?? "root"}: ${l.stderr}`);
    const events = l.stdout.trim().split("\n").filter(Boolean).map((x) => JSON.parse(x) as { syscall: string; action: string });
    assert.ok(events.some((e) => e.syscall === "mknodat" && e.action === "log"), `${args.join(" ")} as ${as ?? "root"}: ${l.stdout}`);
  }
  // status of a stopped server says so, without a stack trace.
  const gone = cli(["status", "--cluster", `15/${NAME}`]);
  assert.equal(gone.status, 2, gone.stderr);
  assert.match(gone.stderr, /no server is running/);
});

test("the docs' root launcher, as written: the policy installed in /etc/pg_seccomp, pg_seccomp run --user postgres -D Debian's configuration directory, filtered, stopped by SIGINT", { skip }, async () => {
  const docs = debianBlocks();
  // deploy.md's policy install (the first test made etcDir with README's install -d).
  for (const { where, line } of docCommands(docs.policy)) {
    const r = spawnSync("sh", ["-c", line], { encoding: "utf8", cwd: "/", env: shimEnv() });
    assert.equal(r.status, 0, `${where}: ${line}\n${r.stdout}${r.stderr}`);
  }
  assert.equal(readFileSync(join(etcDir, "15-main.conf"), "utf8"), readFileSync(policy, "utf8"));
  assert.equal(statSync(join(etcDir, "15-main.conf")).mode & 0o7777, 0o644);
  for (const b of docs.runs) {
    const where = `${b.file}:${b.line}`;
    const command = substitute(b.body);
    const used = /--policy (\S+)/.exec(command)![1]!;
    const proc = spawn("sh", ["-c", command], { stdio: ["ignore", "pipe", "pipe"], cwd: "/", env: shimEnv() });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null }>((res) => proc.on("exit", (code) => res({ code })));
    try {
      const deadline = Date.now() + 60_000;
      while (run("pg_isready", ["-q", "-h", "/var/run/postgresql", "-p", String(port)]).status !== 0) {
        assert.ok(Date.now() < deadline && proc.exitCode === null, `${where}: the server did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const pm = postmasterPid()!;
      const st = cli(["status", "--cluster", `15/${NAME}`, "--json"]);
      assert.equal(st.status, 0, st.stdout + st.stderr);
      const report = JSON.parse(st.stdout) as { postmasterPid: number; dataDir: string; policyPath: string; ok: boolean; processes: Array<{ seccompMode: string }> };
      assert.equal(report.postmasterPid, pm, where);
      assert.equal(report.dataDir, dataDir, `${where}: keyed by the data directory postgresql.conf names`);
      assert.equal(report.policyPath, used, where);
      assert.ok(report.ok && report.processes.length >= 5 && report.processes.every((p) => p.seccompMode === "filter"), `${where}: ${st.stdout}`);
      assert.equal(procStatusFields(pm).Uid!.split(/\s+/)[0], String(pg.uid));
      assert.doesNotMatch(err, /warning|error/, err);
    } finally {
      // SIGINT (the unit's KillSignal) to the launcher: sh's child, or sh itself when it exec'd
      // the command; sh then exits with the launcher's status.
      let launcher = proc.pid!;
      try {
        if (readFileSync(`/proc/${proc.pid}/cmdline`, "utf8").startsWith("sh\0")) launcher = Number(readFileSync(`/proc/${proc.pid}/task/${proc.pid}/children`, "utf8").trim().split(/\s+/)[0]) || launcher;
      } catch {
        /* sh is gone: exited is settled */
      }
      process.kill(launcher, "SIGINT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      const { code } = await exited;
      clearTimeout(t);
      assert.equal(code, 0, `${where}: ${err}`);
    }
  }
});

test("run given Debian's configuration directory as -D keys everything by the data directory postgresql.conf names", { skip }, () => {
  const r = cli(["run", "--check", "--user", "postgres", "--policy", policy, "--", "/usr/lib/postgresql/15/bin/postgres", "-D", CONF_DIR]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`data dir:\\s+${dataDir} \\(data_directory of ${CONF_DIR}/postgresql.conf\\)`));
});

test("the systemd unit's ExecStart, run as systemd would (root), starts a pg_createcluster --datadir cluster filtered and keys it by that data directory", { skip }, async () => {
  const name = `${NAME}d`;
  const root = mkdtempSync(join(tmpdir(), "pg_seccomp-datadir-"));
  chmodSync(root, 0o755);
  const data = join(root, "data");
  const p2 = await freePort();
  const mk = run("pg_createcluster", ["15", name, "--datadir", data, "-p", String(p2), "--start-conf", "manual"]);
  assert.equal(mk.status, 0, mk.stdout + mk.stderr);
  try {
    const unit = readFileSync(repoPath("contrib/systemd/postgresql-seccomp@.service"), "utf8");
    const line = /^ExecStart=(.*)$/m.exec(unit)![1]!.replaceAll("%i", `15-${name}`).replaceAll("%I", `15/${name}`);
    const argv = line.split(/\s+/);
    // This checkout's pg_seccomp, the test's policy, a log in a root-owned directory (systemd's
    // LogsDirectory= would make /var/log/pg_seccomp).
    argv.splice(0, 1, process.execPath, BIN);
    argv[argv.indexOf("--policy") + 1] = policy;
    argv[argv.indexOf("--log") + 1] = join(policyDir, `${name}.jsonl`);
    assert.deepEqual(argv.slice(argv.indexOf("--") + 1), ["/usr/lib/postgresql/15/bin/postgres", "-D", `/etc/postgresql/15/${name}`]);
    // Debian's tmpfiles.d (or the unit's ExecStartPre) makes the socket directory.
    run("install", ["-d", "-o", "postgres", "-g", "postgres", "-m", "2775", "/run/postgresql"]);
    const proc = spawn(argv[0]!, argv.slice(1), { stdio: ["ignore", "pipe", "pipe"], cwd: "/" });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    const exited = new Promise<{ code: number | null }>((res) => proc.on("exit", (code) => res({ code })));
    try {
      const deadline = Date.now() + 60_000;
      while (run("pg_isready", ["-q", "-h", "/var/run/postgresql", "-p", String(p2)]).status !== 0) {
        assert.ok(Date.now() < deadline && proc.exitCode === null, `the server did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      const pm = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
      const st = cli(["status", "--cluster", `15/${name}`, "--json"]);
      assert.equal(st.status, 0, st.stdout + st.stderr);
      const report = JSON.parse(st.stdout) as { postmasterPid: number; dataDir: string; policyPath: string; processes: Array<{ seccompMode: string }> };
      assert.equal(report.postmasterPid, pm);
      assert.equal(report.dataDir, data);
      assert.equal(report.policyPath, policy);
      assert.ok(report.processes.every((p) => p.seccompMode === "filter"));
      assert.ok(existsSync(join(data, "pg_seccomp")), "the spool is in the --datadir directory");
      assert.equal(existsSync(join(`/etc/postgresql/15/${name}`, "pg_seccomp")), false, "not in the configuration directory");
      assert.doesNotMatch(err, /warning|error/, err);
    } finally {
      proc.kill("SIGINT"); // the unit's KillSignal
      const t = setTimeout(() => proc.kill("SIGKILL"), 60_000);
      const { code } = await exited;
      clearTimeout(t);
      assert.equal(code, 0, err);
    }
  } finally {
    run("pg_dropcluster", ["15", name, "--stop"]);
    rmSync(root, { recursive: true, force: true });
  }
});

test("--cluster names the clusters there are when the one given does not exist", { skip }, () => {
  const r = cli(["log", "--cluster", "15/no-such-cluster"]);
  assert.equal(r.status, 2);
  assert.match(r.stderr, /no such cluster/);
  assert.match(r.stderr, new RegExp(`15/${NAME}`));
  assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
});
