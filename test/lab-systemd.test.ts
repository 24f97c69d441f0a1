// systemd as PID 1 (issue 19, deliverable 3): docs/deploy.md's installation, the postgresql@
// drop-in and the separate unit, run for real under systemd in the VM lab's systemd image
// (`npm run test:lab -- systemd`, docs/lab.md). Outside that VM it skips, saying so: it installs
// into /usr/local, makes and drops cluster 15/main and starts units, which only a throw-away
// machine may have done to it.
//
// The commands are the docs' own, read from the Markdown: deploy.md's Install block
// (`test=install`, run line by line as test/install.test.ts does, with npm offline on the lab's
// cache: the VM has no network) and the blocks marked `test=lab-systemd` (the drop-in's install,
// the separate unit's install, "Verifying it works"), run as written, with no substitution: the
// VM is the machine the docs describe. What the test adds is checking what each step did:
// `systemctl start|reload|restart|stop` of postgresql@15-main under the drop-in and of
// postgresql-seccomp@15-main, LogsDirectory=, the launcher's capability bounding set against the
// documented one, every process of the unit filtered (/proc/PID/status), the violation log in
// the file, in seccomp.violations and in the journal with its structured fields
// (`journalctl -o json`), and the server stopping when its supervisor is killed.

import { test, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blocksTestedBy, type DocBlock } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";
import { procStatusFields } from "./support/server.js";

function skipReason(): string | false {
  if (process.env.LAB_INIT !== "systemd") return "runs only in the VM lab's systemd image (npm run test:lab -- systemd): it installs into /usr/local and starts units";
  if (!existsSync("/run/systemd/system")) return "LAB_INIT=systemd but systemd is not running";
  if (process.getuid?.() !== 0) return "needs root";
  return false;
}
const skip = skipReason();

const DATA = "/var/lib/postgresql/15/main";
const DROPIN_UNIT = "postgresql@15-main";
const OWN_UNIT = "postgresql-seccomp@15-main";
const LOG = "/var/log/pg_seccomp/15-main.jsonl";

/** Wall times of the steps, printed at the end (docs/lab.md quotes them). */
const timings: Array<[string, number]> = [];
const note = (s: string) => console.error(`lab-systemd: ${s}`);

function timed<T>(what: string, f: () => T): T {
  const t0 = Date.now();
  try {
    return f();
  } finally {
    const s = (Date.now() - t0) / 1000;
    timings.push([what, s]);
    note(`${what}: ${s.toFixed(1)} s`);
  }
}

const npmEnv = (): NodeJS.ProcessEnv => ({
  ...process.env,
  // The VM has no network: npm reads the dependencies from the cache lab/run.sh filled.
  npm_config_cache: process.env.LAB_NPM_CACHE,
  npm_config_offline: "true",
  npm_config_audit: "false",
  npm_config_fund: "false",
  npm_config_update_notifier: "false",
});

function sh(script: string, opts: { cwd?: string; as?: string; env?: NodeJS.ProcessEnv } = {}): SpawnSyncReturns<string> {
  const argv = opts.as ? ["/usr/sbin/runuser", "-u", opts.as, "--", "sh", "-ec", script] : ["sh", "-ec", script];
  return spawnSync(argv[0]!, argv.slice(1), { cwd: opts.cwd ?? "/", encoding: "utf8", timeout: 900_000, env: opts.env ?? npmEnv() });
}

function mustRun(where: string, script: string, opts: Parameters<typeof sh>[1] = {}): string {
  note(`${where}: ${script.split("\n")[0]}${script.includes("\n") ? " ..." : ""}`);
  const r = sh(script, opts);
  assert.equal(r.status, 0, `${where}: ${script}\n${r.stdout}${r.stderr}${r.error ?? ""}`);
  return r.stdout;
}

const systemctl = (...args: string[]) => spawnSync("systemctl", args, { encoding: "utf8", timeout: 900_000 });
const prop = (unit: string, name: string) => systemctl("show", "-p", name, "--value", unit).stdout.trim();
const psql = (sql: string) => sh(`psql -X -A -t -d postgres -c "${sql.replace(/"/g, '\\"')}"`, { as: "postgres", env: { PATH: "/usr/bin:/bin" } });

function query(sql: string): string {
  const r = psql(sql);
  assert.equal(r.status, 0, `${sql}: ${r.stderr}${r.error ?? ""}`);
  return r.stdout.trim();
}

async function waitFor(what: string, cond: () => boolean, ms: number): Promise<number> {
  const t0 = Date.now();
  while (!cond()) {
    assert.ok(Date.now() - t0 < ms, `${what}: not within ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return (Date.now() - t0) / 1000;
}

const alive = (pid: number) => existsSync(`/proc/${pid}`);

function postmasterPid(): number {
  return Number(readFileSync(join(DATA, "postmaster.pid"), "utf8").split("\n")[0]);
}

/** Every process in the unit's control group. */
function unitProcesses(unit: string): number[] {
  const cg = prop(`${unit}.service`, "ControlGroup");
  assert.ok(cg, `${unit}: no control group`);
  return readFileSync(`/sys/fs/cgroup${cg}/cgroup.procs`, "utf8").split("\n").filter(Boolean).map(Number);
}

const cmdline = (pid: number) => {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ").trim();
  } catch {
    return ""; // exited meanwhile
  }
};
const parentOf = (pid: number) => {
  try {
    return Number(procStatusFields(pid).PPid);
  } catch {
    return 0;
  }
};

/**
 * The unit runs: its main process is the launcher (root), the postmaster is the launcher's child,
 * and every server process of the unit (the postmaster and its descendants) is filtered by
 * pg_seccomp: Seccomp 2, NoNewPrivs 1, no capabilities, not root. The unit's other processes are
 * the launcher's own, as docs/design.md has them: the launcher and its watchdog (a shell, with
 * its `sleep 1`); anything else fails.
 */
function assertRunningFiltered(unit: string): { launcher: number; postmaster: number } {
  assert.equal(systemctl("is-active", `${unit}.service`).stdout.trim(), "active", unit);
  const launcher = Number(prop(`${unit}.service`, "MainPID"));
  assert.ok(launcher > 0, `${unit}: MainPID`);
  assert.match(cmdline(launcher), /pg_seccomp run --policy \/etc\/pg_seccomp\/15-main\.conf --user postgres /);
  const postmaster = postmasterPid();
  assert.equal(parentOf(postmaster), launcher, "the postmaster is the launcher's child");
  const all = unitProcesses(unit);
  const isServer = (pid: number) => {
    for (let p = pid; p > 1; p = parentOf(p)) if (p === postmaster) return true;
    return false;
  };
  const procs = all.filter((p) => alive(p) && isServer(p));
  const watchdog = (p: number) => parentOf(p) === launcher && /^\/bin\/sh -c .* pg_seccomp-watchdog /s.test(cmdline(p));
  const others = all.filter((p) => p !== launcher && !procs.includes(p) && alive(p));
  for (const p of others) {
    const c = cmdline(p);
    if (c === "") continue;
    assert.ok(watchdog(p) || (c === "sleep 1" && watchdog(parentOf(p))), `pid ${p} in ${unit} is neither a server process nor the launcher's: ${c.slice(0, 200)}`);
  }
  assert.ok(procs.includes(postmaster));
  assert.ok(procs.length >= 5, `postmaster and its auxiliary processes: ${procs.length}`);
  for (const p of procs) {
    let s: Record<string, string>;
    try {
      s = procStatusFields(p);
    } catch {
      continue; // exited meanwhile
    }
    assert.equal(s.Seccomp, "2", `pid ${p} (${s.Name}) is filtered`);
    assert.equal(s.NoNewPrivs, "1", `pid ${p} NoNewPrivs`);
    assert.equal(BigInt(`0x${s.CapEff}`), 0n, `pid ${p} has no capabilities`);
    assert.notEqual(s.Uid!.split(/\s+/)[0], "0", `pid ${p} is not root`);
  }
  note(`${unit}: launcher ${launcher}, postmaster ${postmaster}, ${procs.length} server processes, all Seccomp 2; ${others.length} of the launcher's own (its watchdog)`);
  return { launcher, postmaster };
}

const CAPS: Record<string, number> = { CAP_CHOWN: 0, CAP_DAC_OVERRIDE: 1, CAP_KILL: 5, CAP_SETGID: 6, CAP_SETUID: 7, CAP_NET_ADMIN: 12, CAP_SYS_PTRACE: 19, CAP_SYSLOG: 34, CAP_AUDIT_READ: 37 };

/** deploy.md's directive table: the capability set the units document. */
function documentedCapabilities(): string[] {
  const md = readFileSync(repoPath("docs/deploy.md"), "utf8");
  const m = /^\| `CapabilityBoundingSet=([A-Z_ ]+)` \|/m.exec(md);
  assert.ok(m, "deploy.md's CapabilityBoundingSet= row");
  return m[1]!.trim().split(/\s+/);
}

function assertCapabilities(unit: string, launcher: number): void {
  const documented = documentedCapabilities();
  let mask = 0n;
  for (const c of documented) {
    assert.ok(c in CAPS, `${c}: a capability this test knows`);
    mask |= 1n << BigInt(CAPS[c]!);
  }
  assert.equal(BigInt(`0x${procStatusFields(launcher).CapBnd}`), mask, `${unit}: the launcher's bounding set is ${documented.join(" ")}`);
  // `run` checks its capabilities at start and warns naming a missing one: none is missing.
  const journal = spawnSync("journalctl", ["-b", "-u", `${unit}.service`, "-o", "cat", "--no-pager"], { encoding: "utf8" }).stdout;
  assert.doesNotMatch(journal, /pg_seccomp: (warning|error):.*CAP_/, `${unit}: run named a missing capability`);
}

/** deploy.md's blocks this test runs, by what they do; one it does not know fails here. */
function labBlocks(): { dropIn: DocBlock; ownUnit: DocBlock; verify: DocBlock } {
  const blocks = blocksTestedBy("lab-systemd");
  const one = (what: string, re: RegExp) => {
    const found = blocks.filter((b) => re.test(b.body));
    assert.equal(found.length, 1, `${what}: ${found.length} blocks`);
    return found[0]!;
  };
  const dropIn = one("the drop-in's install", /postgresql@15-main\.service\.d\/pg_seccomp\.conf/);
  const ownUnit = one("the separate unit's install", /systemctl enable --now postgresql-seccomp@15-main/);
  const verify = one("Verifying it works", /pg_seccomp run --check/);
  assert.deepEqual(blocks.filter((b) => ![dropIn, ownUnit, verify].includes(b)).map((b) => `${b.file}:${b.line}`), [], "test=lab-systemd blocks no test here runs");
  return { dropIn, ownUnit, verify };
}

const where = (b: DocBlock) => `${b.file}:${b.line}`;

/** A policy whose sessions fail execve (the docs' "deliberate denial"); the starter profile allows it. */
const DENY_EXEC_POLICY = () => readFileSync("/etc/pg_seccomp/postgresql-15.conf", "utf8") + "\n# lab: sessions never exec\nsession_syscall_error = '*, execve'\n";

before(() => {
  if (skip) return;
  note(`systemd ${spawnSync("systemctl", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]}`);
  labBlocks();
});

test("deploy.md's Install block installs the packed tarball with npm install -g", { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), "lab-install-"));
  const name = process.env.LAB_TARBALL_NAME!;
  copyFileSync(process.env.LAB_TARBALL!, join(dir, name));
  const [block] = blocksTestedBy("install").filter((b) => b.file === "docs/deploy.md");
  assert.ok(block);
  timed("install (deploy.md's Install block)", () => {
    for (const [i, line] of block.body.split("\n").entries()) {
      if (line.trim() === "") continue;
      for (const m of line.matchAll(/\.\/(pg_seccomp-\S+\.tgz)/g)) assert.equal(m[1], name, "the docs name the tarball npm pack makes");
      mustRun(`${block.file}:${block.line + 1 + i}`, line, { cwd: dir });
    }
  });
  const prefix = mustRun("npm prefix -g", "npm prefix -g").trim();
  assert.ok(statSync(join(prefix, "bin/pg_seccomp")).isFile());
  assert.ok(existsSync("/usr/local/lib/pg_seccomp/postgres-seccomp"));
  assert.ok(existsSync("/etc/pg_seccomp/postgresql-15.conf"));
});

test("pg_createcluster 15 main, then the drop-in's install block: postgresql@15-main starts filtered", { skip }, () => {
  timed("pg_createcluster 15 main", () => mustRun("pg_createcluster", "pg_createcluster 15 main"));
  const { dropIn } = labBlocks();
  timed("drop-in install block, ending in systemctl restart", () => mustRun(where(dropIn), dropIn.body));
  const { launcher } = assertRunningFiltered(DROPIN_UNIT);
  assertCapabilities(DROPIN_UNIT, launcher);
  // The drop-in's ExecStart is the one that ran, with the path npm prefix -g gave.
  assert.match(prop(`${DROPIN_UNIT}.service`, "DropInPaths"), /postgresql@15-main\.service\.d\/pg_seccomp\.conf/);
  assert.equal(prop(`${DROPIN_UNIT}.service`, "Type"), "notify");
  assert.equal(query("select 40 + 2"), "42");
});

test("LogsDirectory= makes /var/log/pg_seccomp root's 0755", { skip }, () => {
  const st = statSync("/var/log/pg_seccomp");
  assert.ok(st.isDirectory());
  assert.equal(st.uid, 0);
  assert.equal(st.gid, 0);
  assert.equal(st.mode & 0o7777, 0o755);
});

test("systemctl reload: the launcher forwards SIGHUP, the server rereads its configuration", { skip }, async () => {
  const before = { launcher: Number(prop(`${DROPIN_UNIT}.service`, "MainPID")), postmaster: postmasterPid() };
  query("alter system set work_mem = '7MB'");
  assert.notEqual(query("show work_mem"), "7MB");
  timed("systemctl reload postgresql@15-main", () => assert.equal(systemctl("reload", DROPIN_UNIT).status, 0));
  await waitFor("work_mem after reload", () => query("show work_mem") === "7MB", 60_000);
  assert.deepEqual({ launcher: Number(prop(`${DROPIN_UNIT}.service`, "MainPID")), postmaster: postmasterPid() }, before, "reload keeps the processes");
  query("alter system reset work_mem");
  assertRunningFiltered(DROPIN_UNIT);
});

test("systemctl restart with a policy that denies execve to sessions: the violation reaches the log file, seccomp.violations and the journal", { skip }, async () => {
  const old = postmasterPid();
  writeFileSync("/etc/pg_seccomp/15-main.conf", DENY_EXEC_POLICY(), { mode: 0o644 });
  timed("systemctl restart postgresql@15-main", () => assert.equal(systemctl("restart", DROPIN_UNIT).status, 0));
  const { postmaster } = assertRunningFiltered(DROPIN_UNIT);
  assert.notEqual(postmaster, old);
  mustRun("sql install", "pg_seccomp sql install --cluster 15/main -d postgres");
  const r = psql("copy (select 1) to program 'true'");
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /ERROR/);
  assert.equal(query("select 40 + 2"), "42", "the session goes on");

  // The file: root's, postgres's group, 0640, with the record.
  await waitFor("the execve record in the log file", () => existsSync(LOG) && /"syscall":"execve"/.test(readFileSync(LOG, "utf8")), 30_000);
  const st = statSync(LOG);
  assert.equal(st.uid, 0);
  assert.equal(st.mode & 0o777, 0o640);
  assert.equal(st.gid, Number(spawnSync("id", ["-g", "postgres"], { encoding: "utf8" }).stdout.trim()));
  // seccomp.violations reads it as postgres (through LogsDirectory='s 0755).
  assert.match(query("select syscall || ' ' || action || ' ' || role || ' ' || database from seccomp.violations where syscall = 'execve'"), /^execve error postgres postgres$/m);

  // The journal: the native protocol's fields, from a process of the unit.
  let record: Record<string, string> | undefined;
  await waitFor("the execve record in the journal", () => {
    const j = spawnSync("journalctl", ["-b", "-o", "json", "--no-pager", "SYSLOG_IDENTIFIER=pg_seccomp", "SYSCALL=execve"], { encoding: "utf8" });
    record = j.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, string>).at(-1);
    return record !== undefined;
  }, 30_000);
  note(`journal record: ${JSON.stringify(record)}`);
  assert.equal(record!.ACTION, "error");
  assert.match(record!.ERRNO!, /^E[A-Z0-9]+$/);
  assert.equal(record!.ROLE, "postgres");
  assert.equal(record!.DATABASE, "postgres");
  assert.equal(record!.PRIORITY, "4");
  assert.equal(record!.MESSAGE_ID, "5ecc0f17e1374a8c9d0e2b6f3a9c71d2");
  assert.equal(record!.SYSCALL_NR, "59");
  assert.match(record!.PID!, /^\d+$/);
  assert.ok(record!.CONTEXT, "CONTEXT");
  assert.match(record!.MESSAGE!, /^execve \(error/);
  assert.equal(record!._SYSTEMD_UNIT, `${DROPIN_UNIT}.service`, "journald puts it under the unit");
});

test("deploy.md's \"Verifying it works\" block, as written, on the running 15/main", { skip }, async () => {
  const { verify } = labBlocks();
  // Paragraphs (a blank line apart) run as one script each: the second sets $pm for its loop.
  const paragraphs = verify.body.split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean);
  for (const p of paragraphs) {
    const commands = p.split("\n").filter((l) => !l.startsWith("#")).join("\n");
    if (/ -f\b/.test(commands)) {
      // `log -f` follows for ever: it must print the denial above, then it is stopped.
      // Its own process group: sh may fork pg_seccomp rather than exec it, and a follower left
      // running keeps this file's pipes, so the test runner never ends (seen in the lab).
      const child = spawn("sh", ["-c", commands.replace(/\s+#.*$/, "")], { stdio: ["ignore", "pipe", "pipe"], detached: true });
      let out = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (out += d.toString()));
      try {
        await waitFor(`${where(verify)}: log -f prints the execve record`, () => /execve/.test(out), 60_000);
      } finally {
        try {
          process.kill(-child.pid!, "SIGKILL");
        } catch {
          // already gone
        }
        child.stdout.destroy();
        child.stderr.destroy();
        child.unref();
      }
      continue;
    }
    if (/^psql /.test(commands)) {
      const r = sh(commands, { as: "postgres", env: { PATH: "/usr/bin:/bin" } });
      assert.notEqual(r.status, 0, `${where(verify)}: ${commands}: the copy fails`);
      assert.match(r.stderr, /ERROR/);
      // The launcher writes the record once the supervisor's worker has passed it on (and looked
      // up the statement): after psql has seen the error, under TCG sometimes well after.
      const execveErrors = () => readFileSync(LOG, "utf8").split("\n").filter((l) => /"syscall":"execve".*"action":"error"/.test(l)).length;
      await waitFor(`${where(verify)}: one more execve error line in the log`, () => execveErrors() >= 2, 30_000);
      assert.equal(execveErrors(), 2, "one more execve error line in the log");
      continue;
    }
    const out = mustRun(where(verify), commands);
    if (/\/proc\/\$p\/status/.test(commands)) {
      const lines = out.trim().split("\n");
      assert.ok(lines.length >= 5, out);
      for (const l of lines) {
        assert.match(l, /^\d+ /, l);
        assert.match(l, /\bSeccomp:\s+2\b/, l);
        assert.match(l, /\bNoNewPrivs:\s+1\b/, l);
      }
    }
  }
});

test("the supervisor killed: the server stops within seconds (fail closed)", { skip }, async () => {
  const launcher = Number(prop(`${DROPIN_UNIT}.service`, "MainPID"));
  const postmaster = postmasterPid();
  const since = Math.floor(Date.now() / 1000) - 1;
  process.kill(launcher, "SIGKILL");
  const took = await waitFor("the postmaster gone after SIGKILL of the launcher", () => !alive(postmaster), 60_000);
  timings.push(["postmaster gone after the launcher's SIGKILL", took]);
  note(`postmaster ${postmaster} gone ${took.toFixed(1)} s after SIGKILL of launcher ${launcher}`);
  assert.ok(took < 30, `${took} s`);
  // What stopped it: the parent-death signal the launcher set (SIGQUIT, an immediate shutdown),
  // not systemd (KillMode=mixed signals only the main process, which is gone, and would wait
  // TimeoutStopSec=1h before killing the rest).
  await waitFor("the postmaster's immediate shutdown in the journal", () =>
    /received immediate shutdown request/.test(spawnSync("journalctl", ["-u", `${DROPIN_UNIT}.service`, "--since", `@${since}`, "-o", "cat", "--no-pager"], { encoding: "utf8" }).stdout), 30_000);
  await waitFor("the unit inactive", () => !["active", "deactivating"].includes(systemctl("is-active", DROPIN_UNIT).stdout.trim()), 60_000);
  // Debian's Restart=no (the drop-in keeps it): the unit stays down, failed.
  assert.equal(systemctl("is-active", DROPIN_UNIT).stdout.trim(), "failed");
  systemctl("reset-failed", DROPIN_UNIT);
});

test("systemctl start and stop: a clean stop through the launcher", { skip }, async () => {
  timed("systemctl start postgresql@15-main", () => assert.equal(systemctl("start", DROPIN_UNIT).status, 0));
  const { postmaster } = assertRunningFiltered(DROPIN_UNIT);
  timed("systemctl stop postgresql@15-main", () => assert.equal(systemctl("stop", DROPIN_UNIT).status, 0));
  assert.equal(alive(postmaster), false);
  assert.equal(systemctl("is-active", DROPIN_UNIT).stdout.trim(), "inactive");
  assert.equal(prop(`${DROPIN_UNIT}.service`, "Result"), "success");
  assert.equal(prop(`${DROPIN_UNIT}.service`, "ExecMainStatus"), "0");
  assert.equal(existsSync(join(DATA, "postmaster.pid")), false, "the postmaster removed its pid file: a clean shutdown");
});

test("the separate unit, installed as deploy.md shows: start, reload, restart, stop, filtered throughout", { skip }, async () => {
  const { ownUnit } = labBlocks();
  timed("separate unit install block, ending in systemctl enable --now", () => mustRun(where(ownUnit), ownUnit.body));
  const first = assertRunningFiltered(OWN_UNIT);
  assertCapabilities(OWN_UNIT, first.launcher);
  // systemd's own filters (SystemCallFilter=, SystemCallArchitectures=) under pg_seccomp's:
  // systemd 252 installed two, so the postmaster showed three; at least one of systemd's.
  assert.ok(Number(procStatusFields(first.postmaster).Seccomp_filters) >= 2, "systemd's filter under pg_seccomp's");
  assert.equal(systemctl("is-enabled", DROPIN_UNIT).stdout.trim(), "masked");
  assert.equal(query("select 40 + 2"), "42");
  timed("systemctl reload postgresql-seccomp@15-main", () => assert.equal(systemctl("reload", OWN_UNIT).status, 0));
  assert.equal(postmasterPid(), first.postmaster);
  timed("systemctl restart postgresql-seccomp@15-main", () => assert.equal(systemctl("restart", OWN_UNIT).status, 0));
  const second = assertRunningFiltered(OWN_UNIT);
  assert.notEqual(second.postmaster, first.postmaster);
  timed("systemctl stop postgresql-seccomp@15-main", () => assert.equal(systemctl("stop", OWN_UNIT).status, 0));
  assert.equal(alive(second.postmaster), false);
  assert.equal(prop(`${OWN_UNIT}.service`, "Result"), "success");
});

test("timings", { skip }, () => {
  for (const [what, s] of timings) note(`timing: ${what}: ${s.toFixed(1)} s`);
  assert.ok(timings.length > 0);
});
