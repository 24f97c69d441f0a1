// The violation log is hostile input to its readers: whoever can write it (or a torn write) can
// put any line in it. A real server under `pg_seccomp run`, a real denial logged, then hostile
// lines appended (as root) to the log file its run state names: seccomp.violations and
// `pg_seccomp log` must still answer with the valid records, skip the rest and say so, and
// print nothing raw to a terminal.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { appendFileSync, readFileSync, rmSync, statSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { findRunState } from "../../src/host/run-state.js";
import { BIN, integrationSkip, newCluster, startReady, stop, waitFor, writePolicy, type RunningServer } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";
import { hostArch } from "../../src/syscalls/index.js";

const skip = integrationSkip();
let cluster: Cluster;
let server: RunningServer;
let logPath: string;

function cli(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", timeout: 60_000 });
}

const record = (over: Record<string, unknown>) =>
  JSON.stringify({
    time: "2026-01-02T03:04:05.678Z", pid: 4242, process: "postgres: mallory postgres [local] SELECT", context: "session",
    role: "mallory", database: "postgres", syscall: "execve", nr: 59, args: ["0x0"], action: "error", errno: 13, ...over,
  });

before(async () => {
  if (skip) return;
  cluster = await newCluster();
  const profile = readFileSync(hostProfilePath(), "utf8");
  const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\n");
  server = await startReady(cluster, ["--policy", policy]);
  const conn = `host=${cluster.socketDir} port=${cluster.port} user=postgres dbname=postgres`;
  const r = cli("sql", "install", "-d", conn, "-D", cluster.dataDir, "--arch", hostArch());
  assert.equal(r.status, 0, r.stderr);
  logPath = findRunState({ dataDir: cluster.dataDir })!.logPath;
  // One real record from the launcher.
  assert.equal(psql(cluster, "copy (select 1) to program 'cat > /dev/null'").ok, false);
  await waitFor(() => /execve/.test(psql(cluster, "select syscall from seccomp.violations").stdout), 10_000, "the denial in the view");
});
after(async () => {
  if (server) await stop(server);
  if (cluster) destroyCluster(cluster);
  // The default log (in /run/pg_seccomp, a tmpfs) grew by megabytes of hostile lines here.
  if (logPath) rmSync(logPath, { force: true });
});

/** Lines that are not records; each ends with a newline. */
const HOSTILE: Array<string | Buffer> = [
  "[1,2,3]", "42", "null", '"just a string"', "{}", "{\"time\":", "not json at all",
  record({ pid: "4242" }), record({ pid: 1.5 }), record({ pid: 2 ** 31 }), record({ pid: null }), record({ nr: 1e12 }),
  record({ time: "2026-13-45T99:99:99Z" }), record({ time: 7 }), record({ args: "0x0" }), record({ args: [1] }),
  record({ action: "pwn" }), record({ role: ["x"] }), record({ errno: "EACCES" }), record({ errno: 99999 }),
  record({ query: "nul \u0000 in a string" }), // jsonb refuses \u0000
  "[".repeat(60_000), // deep nesting within the line cap
  Buffer.concat([Buffer.from(record({}).slice(0, -2)), Buffer.from([0xff, 0xc0, 0x80]), Buffer.from('"}')]), // invalid UTF-8
];
const TOO_LONG = ["[".repeat(100_000), record({ query: "x".repeat(1 << 20) })];
const ESCAPE = "\x1b[2J\x1b]0;owned\x07\u202e";

test("seccomp.violations and pg_seccomp log survive hostile lines in the log", { skip }, () => {
  for (const l of [...HOSTILE, ...TOO_LONG]) appendFileSync(logPath, Buffer.concat([Buffer.from(l), Buffer.from("\n")]));
  appendFileSync(logPath, record({ pid: 777, role: `eve${ESCAPE}`, query: `select 1;${ESCAPE}\nrm -rf /` }) + "\n");
  appendFileSync(logPath, record({ pid: 778 }).slice(0, 50)); // torn: being written

  const r = psql(cluster, "select pid, role from seccomp.violations order by pid = 777");
  assert.ok(r.ok, r.stderr);
  const rows = r.stdout.trim().split("\n");
  assert.equal(rows.length, 2, r.stdout);
  assert.match(rows[1]!, /^777\|eve\x1b\[2J/);
  assert.match(r.stderr, new RegExp(`NOTICE: .*: ${HOSTILE.length} line\\(s\\) skipped \\(not a violation record\\)`));
  assert.match(r.stderr, /NOTICE: .*: 2 line\(s\) skipped \(longer than 65536 bytes\)/);
  // Typed columns come out typed.
  assert.equal(query(cluster, "select pg_typeof(time)::text || ' ' || pg_typeof(pid)::text || ' ' || errno || ' ' || args[1] from seccomp.violations where pid = 777"), "timestamp with time zone integer 13 0x0");

  // The CLI takes the record with "\u0000" in a string (JSON allows it; jsonb does not) and
  // prints it escaped.
  const log = cli("log", "-D", cluster.dataDir);
  assert.equal(log.status, 0, log.stderr);
  assert.match(log.stderr, new RegExp(`note: .*: ${HOSTILE.length - 1} lines skipped \\(not a violation record\\)`));
  assert.match(log.stderr, /note: .*: 2 lines skipped \(longer than 64 KiB\)/);
  assert.match(log.stderr, /the last line is incomplete/);
  assert.match(log.stdout, /\(3 rows\)/);
  assert.match(log.stdout, /nul \\x00 in a string/);
  assert.match(log.stdout, /eve\\x1b\[2J\\x1b\]0;owned\\x07\\u202e/);
  const raw = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]/;
  assert.doesNotMatch(log.stdout, raw);
  assert.equal(log.stdout.split("\n").length, 7, log.stdout); // header, rule, 3 rows, footer, ""
  const json = cli("log", "-D", cluster.dataDir, "--jsonl");
  assert.equal(json.status, 0, json.stderr);
  assert.doesNotMatch(json.stdout, raw);
  const events = json.stdout.trim().split("\n").map((l) => JSON.parse(l) as { pid: number; role?: string });
  assert.deepEqual(events.map((e) => e.pid).slice(1), [4242, 777]);
  assert.equal(events[2]!.role, `eve${ESCAPE}`);
  // --json: the same records as one array, escaped the same way.
  const array = cli("log", "-D", cluster.dataDir, "--json");
  assert.doesNotMatch(array.stdout, raw);
  assert.deepEqual((JSON.parse(array.stdout) as Array<{ pid: number }>).map((e) => e.pid), events.map((e) => e.pid));
});

test("seccomp.violations reads only the newest 16 MiB of a log that grew past it", { skip }, () => {
  appendFileSync(logPath, "\n"); // end the torn line of the test above
  const filler = "x".repeat(1023) + "\n";
  const mib = filler.repeat(1024);
  for (let i = 0; i < 17; i++) appendFileSync(logPath, mib);
  appendFileSync(logPath, record({ pid: 999 }) + "\n");
  assert.ok(statSync(logPath).size > 17 * 1024 * 1024);
  const started = Date.now();
  const r = psql(cluster, "select pid from seccomp.violations");
  assert.ok(r.ok, r.stderr);
  assert.equal(r.stdout.trim(), "999", "only the newest 16 MiB: the early records are out of reach");
  const skipped = Number(/NOTICE: .*: (\d+) line\(s\) skipped \(not a violation record\)/.exec(r.stderr)?.[1]);
  assert.ok(skipped > 16_000 && skipped < 16_384, `skipped ${skipped}`);
  assert.ok(Date.now() - started < 30_000, `took ${Date.now() - started} ms`);
});
