// `pg_seccomp learn` where DBAs run it: a cluster made with pg_createcluster (configuration in
// /etc/postgresql/15/NAME, data in /var/lib/postgresql/15/NAME, socket in /var/run/postgresql),
// learned with -D of its configuration directory and with --cluster 15/NAME (docs/profiles.md
// shows both). learn finds postmaster.pid in the data directory the configuration names, queries
// only the statistics views 15 has (no pg_stat_checkpointer ERROR in the server log), and writes
// a policy `pg_seccomp check` accepts.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { findPgBinDir, freePort } from "../src/postgres/cluster.js";
import { seccompSupport } from "../src/kernel/index.js";
import { BIN } from "./support/server.js";
import { blocksTestedBy } from "./support/doc-blocks.js";

function skipReason(): string | false {
  if (process.getuid?.() !== 0) return "needs root (pg_createcluster)";
  if (!existsSync("/usr/bin/pg_createcluster")) return "postgresql-common is not installed";
  try {
    findPgBinDir(15);
  } catch {
    return "PostgreSQL 15 is not installed";
  }
  const s = seccompSupport();
  return s.ok ? false : `seccomp unavailable: ${s.reason}`;
}
const skip = skipReason();

const NAME = `psl${process.pid}`;
const CONF_DIR = `/etc/postgresql/15/${NAME}`;
const POSTGRES = "/usr/lib/postgresql/15/bin/postgres";
// The docs' short round: a workload, no timer or crash round (exit 2: written, reported incomplete).
const WORKLOAD = "pgbench -i -q -s 1 && pgbench -c 2 -T 2 >/dev/null";
let created = false;
let outDir = "";

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 300_000, cwd: "/" });
}

before(async () => {
  if (skip) return;
  const port = await freePort();
  const r = run("pg_createcluster", ["15", NAME, "-p", String(port), "--start-conf", "manual"]);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  created = true;
  outDir = mkdtempSync(join(tmpdir(), "pg_seccomp-learn-debian-"));
  chmodSync(outDir, 0o755);
});

after(() => {
  if (created) run("pg_dropcluster", ["15", NAME, "--stop"]);
  if (outDir) rmSync(outDir, { recursive: true, force: true });
});

function checkRound(r: SpawnSyncReturns<string>, out: string): void {
  assert.equal(r.status, 2, r.stderr.slice(-4000));
  assert.match(r.stderr, /server accepts connections \(\/var\/run\/postgresql, port \d+\); running the workload as postgres/);
  assert.match(r.stdout, /INCOMPLETE \(not seen: the timers were not shortened/);
  assert.doesNotMatch(r.stderr, /pg_stat_checkpointer/);
  const c = spawnSync(process.execPath, [BIN, "check", "--arch", process.arch === "arm64" ? "aarch64" : "x86_64", out], { encoding: "utf8" });
  assert.equal(c.status, 0, c.stderr);
  assert.match(readFileSync(out, "utf8"), /^global_syscall_allow = /m);
}

test("learn -D /etc/postgresql/15/NAME (the configuration directory) and learn --cluster 15/NAME", { skip, timeout: 600_000 }, () => {
  const t0 = Date.now();
  const out1 = join(outDir, "learned-D.conf");
  const r1 = run(process.execPath, [BIN, "learn", "-o", out1, "--no-timers", "--no-crash-round", "--workload", WORKLOAD, "--", POSTGRES, "-D", CONF_DIR]);
  checkRound(r1, out1);
  // docs/profiles.md's --cluster round, read from the Markdown and run as written, with two
  // changes: the cluster is this test's (not the machine's 15/main) and -o a directory of its own.
  const [block] = blocksTestedBy("learn-debian");
  assert.ok(block, "docs/profiles.md: the learn --cluster block, marked test=learn-debian");
  const out2 = join(outDir, "learned-cluster.conf");
  const command = block.body.replace(/\\\n\s*/g, "").trim();
  assert.match(command, /^pg_seccomp learn -o \/etc\/pg_seccomp\/short\.conf .* --cluster 15\/main$/);
  const r2 = spawnSync("sh", ["-c", command.replace(/^pg_seccomp /, `"${process.execPath}" "${BIN}" `).replace("/etc/pg_seccomp/short.conf", out2).replace(/--cluster 15\/main$/, `--cluster 15/${NAME}`)], { encoding: "utf8", timeout: 300_000, cwd: "/" });
  assert.ok(command.includes(WORKLOAD), "the docs' workload is the one -D ran above");
  checkRound(r2, out2);
  // The server's log (stderr, through learn) has no ERROR of learn's own queries.
  assert.doesNotMatch(r1.stderr + r2.stderr, /ERROR: .*(relation|column) .* does not exist/);
  const bad = run(process.execPath, [BIN, "learn", "-o", out2, "--cluster", `15/${NAME}`, "--", POSTGRES]);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /give --cluster or the postgres command after --, not both/);
  process.stderr.write(`# learn on a Debian cluster, twice: ${((Date.now() - t0) / 1000).toFixed(0)} s\n`);
});
