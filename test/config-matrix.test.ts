// A matrix of configurations (seed names and pgseccomp's, per-role settings with and without
// session_roles, roles created with and without quotes, session defaults set and unset, a
// missing global default, pgseccomp.enabled unset, lists equal to the global ones, entries equal
// to their filter's default, empty and '*' lists, quoted entries, upper-case action words):
// for every role, `pg_seccomp show --role R`, seccomp.pg_get_seccomp_filter() / seccomp.seccomp_filter() on a
// real server, and what the kernel does to calls the role's backend makes must agree. One
// server start per configuration, on one cluster.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { destroyCluster, psql, query, type Cluster } from "../src/postgres/cluster.js";
import { parsePolicyText } from "../src/policy/policy.js";
import { BIN, integrationSkip, newCluster, startReady, stop, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";

const skip = integrationSkip();
const PROFILE = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");

/** Calls a backend makes on request, each with the SQL that makes it and how a denial shows. */
const PROBES = {
  execve: { sql: "copy (select 1) to program 'cat > /dev/null'", ran: (out: string) => /^COPY 1$/m.test(out) },
  getdents64: { sql: "select 'n=' || count(*) from pg_ls_dir('.')", ran: (out: string) => /n=\d+/.test(out) },
  kill: { sql: "select 'reload=' || pg_reload_conf()", ran: (out: string) => /reload=true/.test(out) },
} as const;
type Probe = keyof typeof PROBES;
type Expect = Partial<Record<Probe, "runs" | "denied">>;

/** Roles as they are created (case kept: "Alice" is created quoted). */
const ROLES = ["postgres", "Alice", "bob", "carol", "dave"];

interface Config {
  name: string;
  text: string;
  /** What some roles must see (beyond agreement), so that the matrix cannot pass by agreeing on nothing. */
  expect: Record<string, Expect>;
}

const CONFIGS: Config[] = [
  {
    name: "seed names on the starter profile: per-role lists without session_roles, a quoted role suffix, an empty list",
    text: PROFILE + `
session_syscall_error = '*, execve'
session_syscall_allow."Alice" = '*, execve'
session_syscall_error."Alice" = '*, getdents64'
session_syscall_error.bob = '*, kill'
session_syscall_error.carol = ''
`,
    expect: {
      postgres: { execve: "denied", getdents64: "runs", kill: "runs" },
      Alice: { execve: "runs", getdents64: "denied" },
      bob: { execve: "runs", kill: "denied" }, // a role's list replaces the session's; '*' is the global list
      carol: { execve: "runs" },
    },
  },
  {
    name: "pgseccomp names: global default missing (allow), session default unset (allow), session_roles with a quoted role, quoted entries, entries equal to the default",
    text: `
pgseccomp.enabled = on
pgseccomp.global_syscall_error = 'execve'
pgseccomp.session_syscall_allow = 'execve, close'
pgseccomp.session_roles = '"Alice", bob'
pgseccomp.session_syscall_error.alice = 'getdents64'
pgseccomp.session_syscall_error.bob = '"getdents64", kill'
pgseccomp.session_syscall_error.carol = 'getdents64'
`,
    expect: {
      postgres: { execve: "denied", getdents64: "runs", kill: "runs" },
      Alice: { getdents64: "denied", kill: "runs" },
      bob: { getdents64: "denied", kill: "denied" },
      carol: { getdents64: "runs" },
    },
  },
  {
    name: "pgseccomp names: session lists equal to the global ones, a role's empty list and '*'",
    text: `
pgseccomp.enabled = on
pgseccomp.global_syscall_default = 'allow'
pgseccomp.global_syscall_error = 'execve'
pgseccomp.session_syscall_default = 'allow'
pgseccomp.session_syscall_error = 'execve'
pgseccomp.session_roles = 'bob, carol'
pgseccomp.session_syscall_error.bob = ''
pgseccomp.session_syscall_error.carol = '*, kill'
`,
    expect: {
      postgres: { execve: "denied", kill: "runs", getdents64: "runs" },
      bob: { execve: "denied" },
      carol: { execve: "denied", kill: "denied" },
    },
  },
  {
    name: "pgseccomp names, pgseccomp.enabled = off said in so many words: nothing is filtered (unset is refused by run)",
    text: `
pgseccomp.enabled = off
pgseccomp.global_syscall_default = 'allow'
pgseccomp.global_syscall_error = 'execve, getdents64, kill'
`,
    expect: { postgres: { execve: "runs", getdents64: "runs", kill: "runs" }, bob: { execve: "runs" } },
  },
];

let cluster: Cluster;

before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const s = await startReady(cluster, ["--policy", writePolicy("seccomp = off\nglobal_syscall_default = allow\n")]);
  try {
    for (const r of ROLES.filter((x) => x !== "postgres")) {
      const id = `"${r}"`;
      query(cluster, `create role ${id} login in role pg_execute_server_program; grant execute on function pg_ls_dir(text) to ${id}; grant execute on function pg_reload_conf() to ${id}`);
    }
    // Installed once: each configuration below is a restart under run with another policy, and
    // the functions read the running launcher's table at call time.
    const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
    const inst = cli("sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", "x86_64");
    assert.equal(inst.status, 0, inst.stderr);
    const all = ROLES.map((r) => `"${r}"`).join(", ");
    query(cluster, `grant execute on function seccomp.seccomp_filter() to ${all}; grant execute on function seccomp.pg_get_seccomp_filter() to ${all}`);
  } finally {
    await stop(s);
  }
});
after(() => {
  if (cluster) destroyCluster(cluster);
});

function cli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8" });
}

function psqlAs(role: string, sql: string): string {
  const r = spawnSync(`${cluster.binDir}/psql`, ["-X", "-At", "-U", role, "-d", "postgres", "-c", sql], {
    encoding: "utf8", env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port) },
  });
  return (r.stdout ?? "") + (r.stderr ?? "");
}

/** What a session row says for a call: runs (allow, log) or denied (error, kill, trap). */
function rowVerdict(rows: string[], probe: Probe): "runs" | "denied" {
  const row = rows.find((l) => l.startsWith(`${probe},`)) ?? rows.find((l) => l.startsWith("<default>,"));
  assert.ok(row, `no row for ${probe}`);
  const action = /->(\w+)/.exec(row.split(",")[2]!)?.[1];
  assert.ok(action && !/ if /.test(row), `an unconditional action for ${probe}: ${row}`);
  return action === "allow" || action === "log" ? "runs" : "denied";
}

for (const config of CONFIGS) {
  test(`matrix: ${config.name}`, { skip, timeout: 60_000 }, async () => {
    const policyPath = writePolicy(config.text);
    const enabled = parsePolicyText(config.text, policyPath).enabled;
    const server = await startReady(cluster, ["--policy", policyPath]);
    try {
      for (const role of ROLES) {
        const label = `${config.name} / ${role}`;
        const shown = cli("show", policyPath, "--format", "csv", "--arch", "x86_64", ...(role === "postgres" ? [] : ["--role", role]));
        assert.equal(shown.status, 0, `${label}: ${shown.stderr}`);
        const showRows = shown.stdout.trim().split("\n").slice(1).sort();
        const sqlRows = psqlAs(role, "copy (select * from seccomp.pg_get_seccomp_filter()) to stdout with (format csv)").trim().split("\n").sort();
        const pgsRows = psqlAs(role, "copy (select * from seccomp.seccomp_filter()) to stdout with (format csv)").trim().split("\n").sort();
        if (enabled) {
          assert.deepEqual(sqlRows, showRows, `${label}: seccomp.pg_get_seccomp_filter() = show`);
          assert.deepEqual(pgsRows, showRows, `${label}: seccomp.seccomp_filter() = show`);
        } else {
          // As pgseccomp: no filter, no table.
          assert.match(sqlRows.join("\n") + pgsRows.join("\n"), /ERROR:  seccomp is not enabled[^]*ERROR:  seccomp is not enabled/, label);
        }
        const session = showRows.filter((l) => l.endsWith(",session"));
        for (const probe of Object.keys(PROBES) as Probe[]) {
          const out = psqlAs(role, PROBES[probe].sql);
          const kernel = PROBES[probe].ran(out) ? "runs" : "denied";
          // A policy that is off installs no filter: everything runs, whatever the table says.
          const table = enabled ? rowVerdict(session, probe) : "runs";
          assert.equal(kernel, table, `${label}: ${probe}: the kernel and the table disagree\n${out}\n${session.join("\n")}`);
          const want = config.expect[role]?.[probe];
          if (want) assert.equal(kernel, want, `${label}: ${probe}\n${out}`);
        }
      }
    } finally {
      await stop(server);
    }
  });
}

test("matrix: seccomp.seccomp_filter() on a server not started by run (or with another launcher's table) says so, never shows a stale table", { skip }, async () => {
  const { spawn } = await import("node:child_process");
  const { rmSync, writeFileSync } = await import("node:fs");
  const { launcherTablePath } = await import("../src/host/run-state.js");
  const { postgresArgs, waitReady } = await import("../src/postgres/cluster.js");
  const [bin, ...args] = postgresArgs(cluster);
  const pg = spawn(bin!, args, { uid: cluster.user.uid, gid: cluster.user.gid, stdio: "ignore", cwd: "/" });
  let alive = true;
  pg.on("exit", () => (alive = false));
  try {
    await waitReady(cluster, () => alive, 30_000);
    assert.match(psqlAs("postgres", "select count(*) from seccomp.seccomp_filter()"), /ERROR:  pg_seccomp: no filter table of this server's launcher/);
    // A table of another postmaster (a launcher that died without removing it) is not taken.
    writeFileSync(launcherTablePath(cluster.dataDir), JSON.stringify({ postmasterPid: 1, enabled: true, variants: [{ role: null, database: null, rows: [{ syscall: "<default>", syscallnum: -1, filter_action: "global->allow", context: "global" }] }] }));
    assert.match(psqlAs("postgres", "select count(*) from seccomp.seccomp_filter()"), /ERROR:  pg_seccomp: no filter table of this server's launcher/);
  } finally {
    rmSync(launcherTablePath(cluster.dataDir), { force: true });
    pg.kill("SIGINT");
    await new Promise((r) => (alive ? pg.on("exit", r) : r(undefined)));
  }
});

test("matrix: an action word not written as pgseccomp compares it ('LOG') is refused by show and check alike", { skip }, () => {
  const p = writePolicy("pgseccomp.enabled = on\npgseccomp.global_syscall_default = 'allow'\npgseccomp.session_roles = 'bob'\npgseccomp.session_syscall_default.bob = 'LOG'\n");
  for (const cmd of [["show", p, "--role", "bob"], ["check", p]]) {
    const r = cli(...cmd, "--arch", "x86_64");
    assert.notEqual(r.status, 0, cmd.join(" "));
    assert.match(r.stderr, /"LOG" is not one of allow, log, error, kill as written: pgseccomp would ignore this role default/);
  }
});
