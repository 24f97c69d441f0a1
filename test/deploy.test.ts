// The deployment examples in contrib/ (docs/deploy.md), checked against the real thing.
//
// Static, everywhere: the systemd unit, the Debian drop-in, the pg_ctl wrapper, the Dockerfile,
// its entrypoint and the Kubernetes manifest use only `pg_seccomp run` flags that `run --help`
// lists, and paths that exist; the entrypoint builds the command line docs/deploy.md describes.
//
// End to end, as root with PostgreSQL 15: pg_ctl, run as the postgres user, starts a throwaway
// cluster through contrib/pg_ctl/postgres-seccomp; every check docs/deploy.md makes by hand
// (Seccomp: 2 on the postmaster, pg_ctl status and stop, the launcher's exit status) is made
// here, and so are the caveats it states (pg_ctl -w, pg_ctl restart without -p).

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createCluster, destroyCluster, findPgBinDir, postmasterPid, query, waitReady, type Cluster } from "../src/postgres/cluster.js";
import { close, prctl, seccompSupport } from "../src/kernel/index.js";
import { bindDatagram, receiveDatagram, unixDatagramSocket } from "../src/kernel/dgram.js";
import { blocksTestedBy } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { pg15BinDir, procStatusFields, waitFor, writePolicy } from "./support/server.js";
import { psql } from "../src/postgres/cluster.js";

const BIN = repoPath("dist/src/cli/main.js");
const UNIT = repoPath("contrib/systemd/postgresql-seccomp@.service");
const DROPIN = repoPath("contrib/systemd/postgresql@15-main.service.d/pg_seccomp.conf");
const WRAPPER = repoPath("contrib/pg_ctl/postgres-seccomp");
const DOCKERFILE = repoPath("contrib/docker/Dockerfile");
const ENTRYPOINT = repoPath("contrib/docker/pg_seccomp-entrypoint.sh");
const K8S = repoPath("contrib/kubernetes/postgres-seccomp.yaml");
const PROFILE = repoPath("profiles/postgresql-15-x86_64.conf");

const isRoot = process.getuid?.() === 0;
const rootAndPg15 = !isRoot ? "needs root (--user postgres; a root-owned policy; pg_ctl run as the postgres user)" : pg15BinDir() ? false : "PostgreSQL 15 is not installed";
const endToEndSkip = rootAndPg15 || (seccompSupport().ok ? false : "seccomp is unavailable");

// ------------------------------------------------------------------------------------------
// Static checks

/** The flags `pg_seccomp run --help` lists. */
function runFlags(): Set<string> {
  const r = spawnSync(process.execPath, [BIN, "run", "--help"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return new Set(r.stdout.match(/--[a-z][a-z-]*/g) ?? []);
}

/** The `--flags` a pg_seccomp command line gives to `run` (up to the `--` before postgres). */
function flagsOfRun(argv: readonly string[]): string[] {
  const at = argv.findIndex((a, i) => /(^|\/)pg_seccomp$|\$PG_SECCOMP$/.test(a) && argv[i + 1] === "run");
  assert.ok(at >= 0, `no "pg_seccomp run" in ${argv.join(" ")}`);
  const end = argv.indexOf("--", at + 2);
  assert.ok(end > at, `no "--" before the postgres command in ${argv.join(" ")}`);
  return argv.slice(at + 2, end).filter((a) => a.startsWith("--"));
}

/** key=value settings of a unit file (every occurrence, in order). */
function unitSettings(path: string): Map<string, string[]> {
  const m = new Map<string, string[]>();
  for (const line of readFileSync(path, "utf8").split("\n")) {
    const s = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (s) m.set(s[1]!, [...(m.get(s[1]!) ?? []), s[2]!]);
  }
  return m;
}

const last = (m: Map<string, string[]>, key: string) => m.get(key)?.at(-1);

/** The unit's ExecStart with the instance 15-main, as systemd would expand %i and %I. */
function execStart(path: string, instance = "15-main"): string[] {
  const line = last(unitSettings(path), "ExecStart");
  assert.ok(line, `${path}: no ExecStart`);
  return line.replaceAll("%i", instance).replaceAll("%I", instance.replace("-", "/")).split(/\s+/);
}

test("the systemd unit: pg_seccomp run with flags run --help lists, as root dropping to postgres, stopped and reloaded through the launcher", () => {
  const flags = runFlags();
  const s = unitSettings(UNIT);
  const argv = execStart(UNIT);
  for (const f of flagsOfRun(argv)) assert.ok(flags.has(f), `run --help does not list ${f}`);
  assert.equal(argv[0], "/usr/local/bin/pg_seccomp");
  assert.deepEqual(argv.slice(argv.indexOf("--user"), argv.indexOf("--user") + 2), ["--user", "postgres"]);
  assert.deepEqual(argv.slice(argv.indexOf("--policy"), argv.indexOf("--policy") + 2), ["--policy", "/etc/pg_seccomp/15-main.conf"]);
  // The configuration directory: the data directory is whatever its postgresql.conf says.
  assert.deepEqual(argv.slice(argv.indexOf("--") + 1), ["/usr/lib/postgresql/15/bin/postgres", "-D", "/etc/postgresql/15/main"]);
  assert.doesNotMatch(last(s, "ExecStart")!, /\/var\/lib\/postgresql/);
  assert.equal(s.has("User"), false, "the launcher must start as root to drop to postgres");
  assert.equal(last(s, "Type"), "notify");
  assert.equal(last(s, "NotifyAccess"), "all", "READY=1 comes from the postmaster, the launcher's child");
  assert.equal(last(s, "KillMode"), "mixed");
  assert.equal(last(s, "KillSignal"), "SIGINT");
  assert.equal(last(s, "ExecReload"), "/bin/kill -HUP $MAINPID");
  assert.equal(last(s, "Restart"), "on-failure");
  assert.ok(last(s, "TimeoutStopSec"));
  assert.equal(last(s, "Conflicts"), "postgresql@%i.service");
  const caps = last(s, "CapabilityBoundingSet")!.split(/\s+/);
  for (const c of ["CAP_SETUID", "CAP_SETGID", "CAP_KILL", "CAP_SYS_PTRACE"]) assert.ok(caps.includes(c), `CapabilityBoundingSet lacks ${c}`);
  assert.match(last(s, "SystemCallFilter")!, /\bpidfd_getfd\b/, "systemd's filter must let the launcher take the listener");
  assert.match(last(s, "SystemCallFilter")!, /\bptrace\b/, "systemd's filter must let the launcher seize the stage (server_dumpable off)");
  assert.match(last(s, "SystemCallFilter")!, /\bseccomp\b/, "systemd's filter must let the stage install pg_seccomp's filter (seccomp is in no group but @known)");
  assert.equal(s.has("MemoryDenyWriteExecute"), false);
  for (const pre of s.get("ExecStartPre") ?? []) assert.match(pre, /^\+/, "ExecStartPre needs more than the bounding set (chown)");
  for (const p of ["/bin/kill", "/usr/bin/install"]) assert.ok(existsSync(p), p);
  if (pg15BinDir()) assert.ok(existsSync("/usr/lib/postgresql/15/bin/postgres"));
});

test("the Debian drop-in resets what postgresql@.service sets for pg_ctlcluster and runs the same command as the unit", () => {
  const flags = runFlags();
  const s = unitSettings(DROPIN);
  assert.deepEqual(s.get("ExecStart"), ["", ...unitSettings(UNIT).get("ExecStart")!], "ExecStart= must be cleared first, then the unit's command");
  for (const f of flagsOfRun(execStart(DROPIN))) assert.ok(flags.has(f), `run --help does not list ${f}`);
  assert.deepEqual(s.get("PIDFile"), [""]);
  assert.deepEqual(s.get("ExecStop"), [""]);
  assert.deepEqual(s.get("ExecReload"), ["", "/bin/kill -HUP $MAINPID"]);
  for (const [k, v] of [["Type", "notify"], ["NotifyAccess", "all"], ["KillMode", "mixed"], ["KillSignal", "SIGINT"]]) assert.equal(last(s, k!), v, k);
  const debian = "/lib/systemd/system/postgresql@.service";
  if (existsSync(debian)) {
    // What the drop-in replaces is what Debian's unit sets.
    const d = unitSettings(debian);
    assert.equal(last(d, "Type"), "forking");
    assert.ok(d.has("PIDFile") && d.has("ExecStop") && d.has("ExecReload"));
  }
});

test("systemd-analyze verify accepts the unit and the drop-in on Debian's postgresql@.service", { skip: existsSync("/usr/bin/systemd-analyze") ? false : "systemd-analyze is not installed" }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-units-"));
  try {
    // The commands must exist for verify: a stand-in for pg_seccomp where it will be installed.
    const stub = join(dir, "pg_seccomp");
    writeFileSync(stub, "#!/bin/sh\n", { mode: 0o755 });
    const place = (text: string) => text.replaceAll("/usr/local/bin/pg_seccomp", stub);
    writeFileSync(join(dir, "postgresql-seccomp@.service"), place(readFileSync(UNIT, "utf8")));
    const debian = "/lib/systemd/system/postgresql@.service";
    const units = [join(dir, "postgresql-seccomp@15-main.service")];
    if (existsSync(debian)) {
      copyFileSync(debian, join(dir, "postgresql@.service"));
      mkdirSync(join(dir, "postgresql@15-main.service.d"));
      writeFileSync(join(dir, "postgresql@15-main.service.d", "pg_seccomp.conf"), place(readFileSync(DROPIN, "utf8")));
      units.push(join(dir, "postgresql@15-main.service"));
    }
    for (const u of units) {
      const r = spawnSync("systemd-analyze", ["verify", u], { encoding: "utf8", env: { ...process.env, SYSTEMD_UNIT_PATH: `${dir}:` } });
      assert.equal(r.status, 0, r.stderr);
      // verify prints a unit's problems (drop-ins' too) and may still exit 0.
      assert.equal(r.stderr.trim(), "", `${u}: ${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("run --check accepts the unit's command line as systemd would run it", { skip: rootAndPg15 }, () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-deploy-check-"));
  try {
    chmodSync(dir, 0o755);
    const policy = join(dir, "15-main.conf");
    copyFileSync(PROFILE, policy);
    chmodSync(policy, 0o644);
    const argv = execStart(UNIT);
    argv[argv.indexOf("--policy") + 1] = policy;
    const r = spawnSync(process.execPath, [BIN, ...argv.slice(1, argv.indexOf("run") + 1), "--check", ...argv.slice(argv.indexOf("run") + 1)], { encoding: "utf8" });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /server:\s+\/usr\/lib\/postgresql\/15\/bin\/postgres -D \/etc\/postgresql\/15\/main/);
    if (existsSync("/etc/postgresql/15/main/postgresql.conf")) {
      assert.match(r.stdout, /data dir:\s+\/var\/lib\/postgresql\/15\/main \(data_directory of \/etc\/postgresql\/15\/main\/postgresql.conf\)/);
    }
    assert.match(r.stdout, /server user:\s+postgres/);
    assert.match(r.stdout, /supervisor:\s+yes/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the pg_ctl wrapper is an executable sh script that execs pg_seccomp run with flags run --help lists", () => {
  assert.ok((statSync(WRAPPER).mode & 0o111) !== 0, "executable");
  const n = spawnSync("sh", ["-n", WRAPPER], { encoding: "utf8" });
  assert.equal(n.status, 0, n.stderr);
  const text = readFileSync(WRAPPER, "utf8");
  const exec = text.split("\n").find((l) => l.startsWith("exec "))!;
  const flags = runFlags();
  for (const f of flagsOfRun(exec.split(/\s+/).slice(1))) assert.ok(flags.has(f), `run --help does not list ${f}`);
  assert.match(exec, /-- "\$PG_SECCOMP_POSTGRES" "\$@"$/, "postgres's arguments from pg_ctl are passed on unchanged");
});

test("the Dockerfile copies files that exist and uses flags run --help lists; the package ships what it uses", () => {
  const text = readFileSync(DOCKERFILE, "utf8").replace(/\\\n/g, " ");
  const copies = [...text.matchAll(/^COPY (?!--from)(.*)$/gm)].map((m) => m[1]!.trim().split(/\s+/));
  assert.ok(copies.length >= 5);
  for (const c of copies) for (const src of c.slice(0, -1)) assert.ok(existsSync(repoPath(src)), `COPY source ${src} is not in the repository`);
  const flags = runFlags();
  const runs = [...text.matchAll(/pg_seccomp run [^&\n]*/g)].map((m) => m[0]);
  assert.ok(runs.length >= 1, "the image checks its policy with run --check");
  for (const r of runs) for (const f of flagsOfRun(r.split(/\s+/))) assert.ok(flags.has(f), `run --help does not list ${f}`);
  // What the image takes from the installed package must be in package.json "files".
  const files: string[] = JSON.parse(readFileSync(repoPath("package.json"), "utf8")).files;
  for (const used of ["dist/src/cli/main.js", "profiles/postgresql-15-x86_64.conf"]) {
    assert.ok(text.includes(`/pg_seccomp/${used}`), used);
    assert.ok(files.some((f) => used.startsWith(f + "/")), `package.json files does not ship ${used}`);
    assert.ok(existsSync(repoPath(used.replace(/^dist\/src\/(.*)\.js$/, "src/$1.ts"))), used);
  }
  assert.match(text, /^ENTRYPOINT \["\/usr\/bin\/tini", "--", "\/usr\/local\/bin\/pg_seccomp-entrypoint.sh"\]$/m);
  assert.match(text, /^COPY contrib\/docker\/pg_seccomp-entrypoint.sh \/usr\/local\/bin\/pg_seccomp-entrypoint.sh$/m);
  assert.match(text, /^STOPSIGNAL SIGINT$/m);
});

test("the container entrypoint initialises the official way, then execs pg_seccomp run with the postgres arguments", () => {
  assert.ok((statSync(ENTRYPOINT).mode & 0o111) !== 0, "executable (COPY keeps the mode)");
  const n = spawnSync("bash", ["-n", ENTRYPOINT], { encoding: "utf8" });
  assert.equal(n.status, 0, n.stderr);
  // Stand-ins for the image's docker-ensure-initdb.sh and pg_seccomp that print what they get.
  const stubs = mkdtempSync(join(tmpdir(), "pg_seccomp-deploy-stubs-"));
  try {
    writeFileSync(join(stubs, "docker-ensure-initdb.sh"), '#!/bin/sh\necho "initdb: $*"\n', { mode: 0o755 });
    writeFileSync(join(stubs, "pg_seccomp"), '#!/bin/sh\necho "pg_seccomp: $*"\n', { mode: 0o755 });
    const run = (...args: string[]) => {
      const r = spawnSync("bash", [ENTRYPOINT, ...args], {
        encoding: "utf8",
        env: { PATH: `${stubs}:/usr/bin:/bin`, PG_SECCOMP_POLICY: "/etc/pg_seccomp/p.conf", PG_MAJOR: "15" },
      });
      assert.equal(r.status, 0, r.stderr);
      return r.stdout.trim().split("\n");
    };
    const user = isRoot ? "--user postgres " : "";
    const expected = (pgArgs: string) => [
      `initdb: postgres${pgArgs}`,
      `pg_seccomp: run --policy /etc/pg_seccomp/p.conf ${user}-- /usr/lib/postgresql/15/bin/postgres${pgArgs}`,
    ];
    assert.deepEqual(run("postgres", "-c", "shared_buffers=64MB"), expected(" -c shared_buffers=64MB"));
    assert.deepEqual(run("-c", "work_mem=8MB"), expected(" -c work_mem=8MB"), "flags alone mean postgres, as in the official image");
    assert.deepEqual(run(), expected(""));
    assert.deepEqual(run("echo", "plain"), ["plain"], "other commands run as given");
  } finally {
    rmSync(stubs, { recursive: true, force: true });
  }
});

test("the Kubernetes manifest runs pg_seccomp run with flags run --help lists and mounts the policy file with subPath", () => {
  const text = readFileSync(K8S, "utf8");
  const commands = [...text.matchAll(/^\s*command: (\[.*\])$/gm)].map((m) => JSON.parse(m[1]!) as string[]);
  const launcher = commands.find((c) => c.includes("run"));
  assert.ok(launcher, "a container command with pg_seccomp run");
  const flags = runFlags();
  for (const f of flagsOfRun(launcher)) assert.ok(flags.has(f), `run --help does not list ${f}`);
  assert.deepEqual(launcher.slice(0, 2), ["/usr/bin/tini", "--"]);
  const policy = launcher[launcher.indexOf("--policy") + 1]!;
  assert.match(text, new RegExp(`mountPath: ${policy}\\n\\s+subPath: postgresql-15.conf\\n\\s+readOnly: true`));
  assert.match(text, /defaultMode: 0444/);
  assert.match(text, /add: \["SETUID", "SETGID", "KILL", "SYS_PTRACE", "DAC_OVERRIDE", "CHOWN"\]/);
  assert.match(text, /type: RuntimeDefault/);
});

// ------------------------------------------------------------------------------------------
// pg_ctl end to end

let cluster: Cluster;
let policy: string;

before(async () => {
  if (endToEndSkip) return;
  cluster = await createCluster({ binDir: pg15BinDir()! });
  // The policy as docs/deploy.md asks: root-owned 0644 in a root-owned 0755 directory; the
  // launcher, run by pg_ctl as postgres, must be able to read it.
  // The starter profile: global lists only, as run --in-place as the server's user requires
  // (a per-context policy is refused there: its supervisor would be that user's to kill).
  policy = writePolicy(readFileSync(PROFILE, "utf8") + "\nset_client_filter = on\n", "postgresql-15.conf");
  // The launcher outlives pg_ctl; as a child subreaper this process inherits it when pg_ctl
  // exits, so that its exit status can be read (it stays a zombie: nothing here waits for it).
  prctl(36 /* PR_SET_CHILD_SUBREAPER */, 1);
});

after(() => {
  if (cluster) {
    pgCtl("stop", "-m", "immediate");
    destroyCluster(cluster);
  }
});

/** pg_ctl as the cluster's OS user, with the wrapper pointed at this checkout's pg_seccomp. */
function pgCtl(...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(
    "runuser",
    [
      "-u", cluster.user.name, "--", "env", "-u", "XDG_RUNTIME_DIR",
      `PG_SECCOMP=${process.execPath} ${BIN}`, `PG_SECCOMP_POLICY=${policy}`,
      join(cluster.binDir, "pg_ctl"), "-D", cluster.dataDir, "-l", join(cluster.root, "server.log"), ...args,
    ],
    { encoding: "utf8", cwd: cluster.root, timeout: 120_000 },
  );
}


/** State and wait status of `pid` from /proc/PID/stat (a zombie keeps both). */
function stat(pid: number): { state: string; exitCode: number } | undefined {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ");
    return { state: fields[0]!, exitCode: Number(fields[49]) }; // field 3 and field 52 of proc(5)
  } catch {
    return undefined;
  }
}

const serverLog = () => (existsSync(join(cluster.root, "server.log")) ? readFileSync(join(cluster.root, "server.log"), "utf8") : "");

async function startWithWrapper(): Promise<number> {
  const r = pgCtl("-p", WRAPPER, "-w", "-t", "60", "start");
  assert.equal(r.status, 0, r.stderr + serverLog());
  return postmasterPid(cluster.dataDir)!;
}

/** The supervisor process `run --in-place` started for a postmaster, from the run state it keeps. */
function supervisorOf(postmaster: number): number | undefined {
  for (const dir of ["/run/pg_seccomp", `/tmp/pg_seccomp-${cluster.user.uid}`]) {
    try {
      const st = JSON.parse(readFileSync(join(dir, `${postmaster}.json`), "utf8")) as { launcherPid: number };
      return st.launcherPid;
    } catch {
      /* not there */
    }
  }
  return undefined;
}

/**
 * docs/deploy.md's pg_ctl block (`test=deploy`), read from the Markdown, one command a line, as
 * written. Substituted for a test machine: /srv/pg15 is this test's throwaway cluster (its data
 * directory is /srv/pg15/data's counterpart), /usr/local/lib/pg_seccomp and /etc/pg_seccomp are
 * temporary directories (the latter made here, as deploy.md's Install block makes it), and the
 * reader's my-policy.conf is the test's policy. Lines before "# as the postgres user" run as
 * root in the checkout (contrib/ is relative to it); the rest as the cluster's OS user, with
 * PostgreSQL 15's bin directory on PATH, the wrapper's PG_SECCOMP pointed at this checkout and
 * its PG_SECCOMP_POLICY at the policy installed in etcDir (its default in /etc/pg_seccomp).
 */
function pgCtlDocCommands(libDir: string, etcDir: string): Array<{ where: string; line: string; asServerUser: boolean }> {
  const [block, ...more] = blocksTestedBy("deploy");
  assert.ok(block && more.length === 0, "deploy.md's pg_ctl block");
  let asServerUser = false;
  const commands: Array<{ where: string; line: string; asServerUser: boolean }> = [];
  for (const [i, written] of block.body.split("\n").entries()) {
    if (/^# as the postgres user/.test(written)) asServerUser = true;
    if (written.trim() === "" || written.startsWith("#")) continue;
    const line = written
      .replaceAll("/usr/local/lib/pg_seccomp", libDir)
      .replaceAll("/etc/pg_seccomp", etcDir)
      .replaceAll("/srv/pg15", cluster.root)
      .replaceAll("my-policy.conf", policy);
    commands.push({ where: `${block.file}:${block.line + 1 + i}`, line, asServerUser });
  }
  return commands;
}

test("docs/deploy.md's pg_ctl commands, as written: the wrapper installed, pg_ctl -w start through it (postgres keeps the pid pg_ctl started, filtered, supervised by a separate process), status, reload, restart -p, stop -m fast", { skip: endToEndSkip }, async () => {
  const dirs = mkdtempSync(join(tmpdir(), "pg_seccomp-deploy-dirs-"));
  chmodSync(dirs, 0o755);
  const libDir = join(dirs, "usr-local-lib-pg_seccomp");
  const etcDir = join(dirs, "etc-pg_seccomp");
  mkdirSync(etcDir, { mode: 0o755 });
  const seen: string[] = [];
  let postmaster = 0;
  let supervisor: number | undefined;
  const started = () => {
    postmaster = postmasterPid(cluster.dataDir)!;
    const pm = procStatusFields(postmaster);
    assert.equal(pm.Seccomp, "2");
    assert.equal(pm.NoNewPrivs, "1");
    assert.equal(pm.Uid!.split(/\s+/)[0], String(cluster.user.uid));
    supervisor = supervisorOf(postmaster);
    assert.ok(supervisor, "the supervisor keeps a run state for the postmaster");
    assert.match(readFileSync(`/proc/${supervisor}/cmdline`, "utf8"), /supervise-main\.js/);
    assert.notEqual(Number(pm.PPid), supervisor, "the postmaster is not the supervisor's child");
    assert.equal(procStatusFields(supervisor!).Seccomp, "0", "the supervisor itself is not filtered");
    assert.equal(query(cluster, "select 40 + 2"), "42");
    // The supervisor answers the exec (routed: the policy logs and denies other calls), allowing it.
    const exec = psql(cluster, "copy (select 1) to program 'cat > /dev/null'"); // reads its input: no EPIPE race
    assert.equal(exec.ok, true, exec.stderr + serverLog());
  };
  const supervisorGone = async (pid: number) => {
    const deadline = Date.now() + 15_000;
    while (existsSync(`/proc/${pid}`) && stat(pid)?.state !== "Z" && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
    assert.ok(!existsSync(`/proc/${pid}`) || stat(pid)?.state === "Z", "the supervisor exits when the server does");
  };
  try {
    for (const { where, line, asServerUser } of pgCtlDocCommands(libDir, etcDir)) {
      const r = asServerUser
        ? spawnSync("runuser", ["-u", cluster.user.name, "--", "env", "-u", "XDG_RUNTIME_DIR", `PATH=${cluster.binDir}:${process.env.PATH ?? "/usr/bin:/bin"}`,
            `PG_SECCOMP=${process.execPath} ${BIN}`, `PG_SECCOMP_POLICY=${join(etcDir, "postgresql-15.conf")}`, "sh", "-c", line], { encoding: "utf8", cwd: cluster.root, timeout: 60_000 })
        : spawnSync("sh", ["-c", line], { encoding: "utf8", cwd: repoPath("."), timeout: 120_000 });
      // A server started without -l keeps pg_ctl's output open: the command would seem to hang.
      assert.equal(r.error, undefined, `${where}: ${line}: ${r.error}`);
      assert.equal(r.status, 0, `${where}: ${line}\n${r.stdout}${r.stderr}${serverLog()}`);
      const kind = asServerUser ? /^pg_ctl .*\b(start|status|reload|restart|stop)\b/.exec(line)?.[1] : /^install -d /.test(line) ? "install -d" : /^install .*postgres-seccomp/.test(line) ? "install wrapper" : /^install .*\.conf\b/.test(line) ? "install policy" : undefined;
      assert.ok(kind, `${where}: a command this test knows how to check: ${line}`);
      seen.push(kind);
      switch (kind) {
        case "install -d":
          assert.equal(statSync(libDir).mode & 0o7777, 0o755);
          break;
        case "install wrapper":
          assert.equal(statSync(join(libDir, "postgres-seccomp")).mode & 0o7777, 0o755);
          assert.equal(readFileSync(join(libDir, "postgres-seccomp"), "utf8"), readFileSync(WRAPPER, "utf8"));
          break;
        case "install policy":
          // The wrapper's default policy for PostgreSQL 15 (PG_SECCOMP_POLICY names it in etcDir).
          assert.equal(statSync(join(etcDir, "postgresql-15.conf")).mode & 0o7777, 0o644);
          assert.equal(readFileSync(join(etcDir, "postgresql-15.conf"), "utf8"), readFileSync(policy, "utf8"));
          break;
        case "start":
          assert.match(r.stdout, /server started/);
          started();
          break;
        case "status":
          assert.match(r.stdout, new RegExp(`server is running \\(PID: ${postmaster}\\)`));
          break;
        case "reload":
          assert.equal(postmasterPid(cluster.dataDir), postmaster);
          assert.equal(procStatusFields(postmaster).Seccomp, "2");
          break;
        case "restart": {
          const [oldPm, oldSup] = [postmaster, supervisor!];
          started();
          assert.notEqual(postmaster, oldPm);
          await supervisorGone(oldSup);
          break;
        }
        case "stop":
          assert.match(r.stdout, /server stopped/);
          assert.equal(existsSync(join(cluster.dataDir, "postmaster.pid")), false);
          await supervisorGone(supervisor!);
          assert.match(serverLog(), /database system is shut down/);
          break;
      }
    }
    assert.deepEqual(seen, ["install -d", "install wrapper", "install policy", "start", "status", "reload", "restart", "stop"]);
  } finally {
    rmSync(dirs, { recursive: true, force: true });
  }
});

test("pg_ctl through the wrapper refuses a per-context policy: its supervisor would be the server's user's to kill; the message says why and where to look", { skip: endToEndSkip }, async () => {
  const perContext = writePolicy(readFileSync(PROFILE, "utf8") + "\nsession_syscall_error = 'execve'\n", "per-context.conf");
  const r = spawnSync(
    "runuser",
    ["-u", cluster.user.name, "--", "env", "-u", "XDG_RUNTIME_DIR", `PG_SECCOMP=${process.execPath} ${BIN}`, `PG_SECCOMP_POLICY=${perContext}`,
      join(cluster.binDir, "pg_ctl"), "-D", cluster.dataDir, "-l", join(cluster.root, "refused.log"), "-p", WRAPPER, "-w", "-t", "60", "start"],
    { encoding: "utf8", cwd: cluster.root, timeout: 120_000 },
  );
  assert.notEqual(r.status, 0, "pg_ctl reports that the server did not start");
  const log = readFileSync(join(cluster.root, "refused.log"), "utf8");
  assert.match(log, /pg_seccomp: error: this policy has per-context rules .*run --in-place as the server's own user/);
  assert.match(log, /^(?:pg_seccomp: )?hint: start the server as root with --user .*docs\/deploy\.md, "Root launcher, or the server's own user"/m);
  assert.doesNotMatch(log, /\n\s+at /, "no stack trace");
  assert.equal(existsSync(join(cluster.dataDir, "postmaster.pid")), false, "nothing was started");
  // run --check --in-place, as that user, says the same before anyone tries.
  const check = spawnSync("runuser", ["-u", cluster.user.name, "--", "env", "-u", "XDG_RUNTIME_DIR", process.execPath, BIN, "run", "--check", "--in-place",
    "--policy", perContext, "--", join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { encoding: "utf8", cwd: cluster.root });
  assert.notEqual(check.status, 0);
  assert.match(check.stderr, /^pg_seccomp: error: this policy has per-context rules/m);
  // The same policy is accepted by run --check --in-place as root (the supervisor is then root's).
  const asRoot = spawnSync(process.execPath, [BIN, "run", "--check", "--in-place", "--user", cluster.user.name, "--policy", perContext, "--",
    join(cluster.binDir, "postgres"), "-D", cluster.dataDir], { encoding: "utf8" });
  assert.equal(asRoot.status, 0, asRoot.stderr);
});

test("run --in-place fails closed: when its supervisor process is killed, the watchdog stops the server; committed rows survive", { skip: endToEndSkip }, async () => {
  const r = pgCtl("-p", WRAPPER, "-w", "-t", "60", "start");
  assert.equal(r.status, 0, `${r.stdout}${r.stderr}${serverLog()}`);
  query(cluster, "drop table if exists kept; create table kept as select g from generate_series(1, 500) g");
  const postmaster = postmasterPid(cluster.dataDir)!;
  const supervisor = supervisorOf(postmaster)!;
  process.kill(supervisor, "SIGKILL");
  const t0 = Date.now();
  while (existsSync(`/proc/${postmaster}`) && stat(postmaster)?.state !== "Z" && Date.now() - t0 < 20_000) await new Promise((res) => setTimeout(res, 100));
  assert.ok(!existsSync(`/proc/${postmaster}`) || stat(postmaster)?.state === "Z", "the server was stopped");
  assert.match(serverLog(), /the supervisor \(pid \d+\) is gone; stopping the server/);
  const again = pgCtl("-p", WRAPPER, "-w", "-t", "60", "start");
  assert.equal(again.status, 0, again.stderr + serverLog());
  assert.equal(query(cluster, "select count(*) from kept"), "500");
  assert.equal(pgCtl("stop", "-m", "fast").status, 0);
});

test("pg_ctl restart without -p brings the server back without the filter (the caveat docs/deploy.md states); with -p it stays filtered", { skip: endToEndSkip }, async () => {
  await startWithWrapper();
  // postmaster.opts names the real postgres binary, which is what restart runs without -p.
  assert.match(readFileSync(join(cluster.dataDir, "postmaster.opts"), "utf8"), new RegExp(`^${join(cluster.binDir, "postgres")} `));
  const bare = pgCtl("-m", "fast", "restart");
  assert.equal(bare.status, 0, bare.stderr);
  assert.equal(procStatusFields(postmasterPid(cluster.dataDir)!).Seccomp, "0", "pg_ctl restart without -p runs postgres directly");
  const wrapped = pgCtl("-m", "fast", "-p", WRAPPER, "-w", "restart");
  assert.equal(wrapped.status, 0, wrapped.stderr);
  assert.equal(procStatusFields(postmasterPid(cluster.dataDir)!).Seccomp, "2");
  assert.equal(pgCtl("stop", "-m", "fast").status, 0);
});

test("under the unit's CapabilityBoundingSet set_client_filter works; without CAP_DAC_OVERRIDE run says it will not", { skip: endToEndSkip }, async () => {
  const unitCaps = last(unitSettings(UNIT), "CapabilityBoundingSet")!.split(/\s+/).map((c) => c.replace(/^CAP_/, "").toLowerCase());
  for (const caps of [unitCaps, unitCaps.filter((c) => c !== "dac_override")]) {
    const c = await createCluster({ binDir: pg15BinDir()! });
    // As systemd would start it: root, with only the bounding set's capabilities.
    const proc = spawn("setpriv", [`--bounding-set=-all,${caps.map((x) => `+${x}`).join(",")}`, "--inh-caps=-all", process.execPath, BIN,
      "run", "--user", "postgres", "--policy", policy, "--", join(c.binDir, "postgres"), "-D", c.dataDir], { stdio: ["ignore", "pipe", "pipe"] });
    let err = "";
    proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
    let done = false;
    const exited = new Promise<void>((res) => proc.on("exit", () => { done = true; res(); }));
    try {
      await waitReady(c, () => !done, 60_000);
      if (caps.includes("dac_override")) {
        assert.doesNotMatch(err, /warning/, err);
        const inst = spawnSync(process.execPath, [BIN, "sql", "install", "-D", c.dataDir, "-d", "postgres"], { encoding: "utf8" });
        assert.equal(inst.status, 0, inst.stderr);
        // mknod: in no list of the starter profile's sessions, so an error list naming it is a narrowing.
        const r = spawnSync(join(c.binDir, "psql"), ["-X", "-A", "-t", "-c", "select seccomp.set_client_filter(NULL, NULL, NULL, 'mknod', NULL)"], {
          encoding: "utf8", env: { ...process.env, PGHOST: c.socketDir, PGPORT: String(c.port), PGUSER: "postgres", PGDATABASE: "postgres" },
        });
        assert.equal(r.status, 0, r.stderr + err);
        assert.doesNotMatch(r.stderr, /set_client_filter failed/);
        assert.ok(existsSync(join(c.dataDir, "pg_seccomp")), "the spool");
      } else {
        assert.match(err, /warning: without CAP_DAC_OVERRIDE: set_client_filter\(\) will not work/, err);
      }
    } finally {
      proc.kill("SIGINT");
      const t = setTimeout(() => proc.kill("SIGKILL"), 30_000);
      await exited;
      clearTimeout(t);
      destroyCluster(c);
    }
  }
});

test("run --log-to journald,syslog,file: each denied call reaches a journal and a syslog socket (stand-ins bound in a temp dir) and the file", { skip: endToEndSkip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-logto-"));
  chmodSync(dir, 0o755);
  const journal = unixDatagramSocket();
  const syslog = unixDatagramSocket();
  bindDatagram(journal, join(dir, "journal.sock"));
  bindDatagram(syslog, join(dir, "log.sock"));
  const c = await createCluster({ binDir: pg15BinDir()! });
  const p = join(dir, "policy.conf");
  writeFileSync(p, readFileSync(PROFILE, "utf8") + "\nsession_syscall_error = 'execve'\n", { mode: 0o644 });
  const logFile = join(dir, "violations.jsonl");
  const proc = spawn(process.execPath, [BIN, "run", "--user", "postgres", "--policy", p, "--log", logFile, "--log-to", "journald,syslog,file", "--", join(c.binDir, "postgres"), "-D", c.dataDir], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PG_SECCOMP_JOURNAL_SOCKET: join(dir, "journal.sock"), PG_SECCOMP_SYSLOG_SOCKET: join(dir, "log.sock") },
  });
  let err = "";
  proc.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  let done = false;
  const exited = new Promise<void>((res) => proc.on("exit", () => { done = true; res(); }));
  try {
    await waitReady(c, () => !done, 60_000);
    assert.equal(psql(c, "copy (select 1) to program 'true'").ok, false);
    let j: Buffer | undefined;
    let s: Buffer | undefined;
    const deadline = Date.now() + 10_000;
    while ((!j || !s) && Date.now() < deadline) {
      j ??= receiveDatagram(journal);
      s ??= receiveDatagram(syslog);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(j, `a journal record: ${err}`);
    assert.ok(s, `a syslog record: ${err}`);
    const jt = j.toString();
    for (const f of ["SYSCALL=execve", "CONTEXT=session", "ROLE=postgres", "DATABASE=postgres", "ACTION=error", "SYSLOG_IDENTIFIER=pg_seccomp"]) assert.ok(jt.split("\n").includes(f), `${f} in\n${jt}`);
    assert.match(s.toString(), /^<28>1 \S+ \S+ pg_seccomp \d+ violation \[pg_seccomp@32473 syscall="execve" .*context="session".*role="postgres" database="postgres"/);
    await waitFor(() => existsSync(logFile) && /"execve"/.test(readFileSync(logFile, "utf8")), 10_000, "the file record");
  } finally {
    proc.kill("SIGINT");
    const t = setTimeout(() => proc.kill("SIGKILL"), 30_000);
    await exited;
    clearTimeout(t);
    close(journal);
    close(syslog);
    destroyCluster(c);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the wrapper: the major from PG_VERSION (Patroni's arguments) or from /etc/postgresql/MAJOR/NAME, the policy per cluster when there is one", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-wrapper-"));
  try {
    const stub = join(dir, "pg_seccomp");
    writeFileSync(stub, '#!/bin/sh\necho "$*"\n', { mode: 0o755 });
    const data = join(dir, "data");
    mkdirSync(data);
    writeFileSync(join(data, "PG_VERSION"), "16\n");
    const wrap = (args: string[], env: Record<string, string> = {}) => {
      const r = spawnSync("sh", [WRAPPER, ...args], { encoding: "utf8", env: { PG_SECCOMP: stub, ...env } });
      return { status: r.status, out: r.stdout.trim(), err: r.stderr };
    };
    const user = isRoot ? "--user postgres " : "";
    // What Patroni passes (bin_name.postgres = the wrapper).
    const patroni = ["-D", data, `--config-file=${data}/postgresql.conf`, "--listen_addresses=*", "--port=5432"];
    const p = wrap(patroni);
    assert.equal(p.status, 0, p.err);
    const pgPath = existsSync("/usr/lib/postgresql/16/bin/postgres") || !existsSync("/usr/pgsql-16/bin/postgres") ? "/usr/lib/postgresql/16/bin/postgres" : "/usr/pgsql-16/bin/postgres";
    assert.equal(p.out, `run --in-place ${user}--policy /etc/pg_seccomp/postgresql-16.conf -- ${pgPath} ${patroni.join(" ")}`);
    // Debian's configuration directory as -D (no PG_VERSION there).
    const d = wrap(["-D", "/etc/postgresql/15/main"]);
    assert.equal(d.status, 0, d.err);
    assert.match(d.out, /--policy \/etc\/pg_seccomp\/(postgresql-15|15-main)\.conf -- \/usr\/lib\/postgresql\/15\/bin\/postgres -D \/etc\/postgresql\/15\/main$/);
    // Nothing to go by: a clear message, not a guess.
    const none = wrap(["-D", join(dir, "nothing")]);
    assert.equal(none.status, 1);
    assert.match(none.err, /cannot tell the PostgreSQL major version/);
    // Extra run options from the environment (PG_SECCOMP_RUN_OPTIONS), e.g. the journal.
    assert.match(wrap(patroni, { PG_SECCOMP_RUN_OPTIONS: "--log-to file,journald" }).out, /^run --in-place (--user postgres )?--log-to file,journald --policy /);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
