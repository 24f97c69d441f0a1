// Attack: code loaded into a backend (a superuser's LOAD of a C library) registers a DYNAMIC
// BACKGROUND WORKER whose code is its own library. The worker's process is forked by the
// postmaster and maps the library (dlopen: the exec gate's routed call) before it has a status
// row (a background worker gets its row in InitPostgres), so the classifier has no row and does
// not pin it ("alarm: the server has no row for it"): the mapping is answered in the most
// restrictive child context, which allows mapping, and the worker's code runs before it is
// classified. The classifier's facts for a process without a client connection are its row's
// type and its own MyBackendType (docs/design.md, "Classification"); both are the worker's to
// write once its code runs. It rewrites both to the archiver and runs a shell: under a policy
// that denies exec to sessions only, the archiver's context may exec (archive_command needs it).
// The second test reaches a role's allowances (session_syscall_allow.alice) the same way: the
// worker connects as alice (its row names alice), holds the LOADing session's client socket,
// which that session passes it (SCM_RIGHTS: a connection accepted on the server's listen socket,
// the kernel's fact of a client), points its own MyProcPort at startup names "alice" and
// "postgres", and sets its row's type to "client backend": every fact the row cross-check reads
// then says "alice's session".
// Fixed: a background worker without a row is pinned at its first routed call (its library's
// mapping) by its own MyBackendType, which only the server's code has touched by then: the
// background worker's context (the session's lists), for good (src/classify/classify.ts). The
// fourth step forges the server's readiness (postmaster.pid) and the worker's title instead:
// its own type decides then too, never its title.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, reportLines, startReady, stop, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";

const SERVER_HEADERS = "/usr/include/postgresql/15/server";
const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : !existsSync(join(SERVER_HEADERS, "postmaster/bgworker.h")) ? "no PostgreSQL 15 server headers" : false);
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let dir: string;
let out: string;
const libs: Record<"control" | "forge" | "session" | "delayed" | "titled", string> = { control: "", forge: "", session: "", delayed: "", titled: "" };
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-bgworkerforge-"));
  chmodSync(dir, 0o755);
  out = join(dir, "exec.txt");
  spawnSync("install", ["-m", "0666", "/dev/null", out]);
  for (const kind of ["control", "forge", "delayed", "titled"] as const) {
    const lib = join(dir, `bgworker-${kind}.so`);
    // titled: no forge of its own type, only its bgw_name (its title): "archiver".
    const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-I${SERVER_HEADERS}`, `-DFORGE=${kind === "control" || kind === "titled" ? 0 : 1}`, ...(kind === "delayed" || kind === "titled" ? ["-DDELAY_US=3000000"] : []), ...(kind === "titled" ? ['-DWORKER_NAME="archiver"'] : []), `-DOUT="${out}"`, `-DLIB="${lib}"`, "-o", lib, repoPath("test/fixtures/attack/bgworker-forge.c")], { encoding: "utf8" });
    assert.equal(cc.status, 0, cc.stderr);
    libs[kind] = lib;
  }
  libs.session = join(dir, "bgworker-session.so");
  const cc = spawnSync("cc", ["-shared", "-fPIC", "-O1", `-I${SERVER_HEADERS}`, `-DROLE="alice"`, `-DOUT="${out}"`, `-DLIB="${libs.session}"`, "-o", libs.session, repoPath("test/fixtures/attack/bgworker-session.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("code in a backend registers a background worker that rewrites its own type to the archiver: it must not exec", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    query(cluster, "create role etl superuser login");
    // The control: the same worker without the forge is classified from its row (its type is
    // its bgw_type, no kind pg_seccomp knows: the most restrictive context): no exec.
    const control = psql(cluster, `load '${libs.control}'`, { role: "etl" });
    assert.ok(control.ok, control.stderr);
    const [controlRun] = await reportLines(out, 1);
    assert.match(controlRun ?? "", /^exec [1-9]/, `the background worker exec'd without a forge:\n${s.stderr().slice(-3000)}`);
    // The attack.
    const forge = psql(cluster, `load '${libs.forge}'`, { role: "etl" });
    assert.ok(forge.ok, forge.stderr);
    const [, forgedRun] = await reportLines(out, 2);
    assert.match(forgedRun ?? "", /^exec /);
    assert.notEqual(forgedRun, "exec 0", `the background worker exec'd as the archiver:\n${s.stderr().slice(-3000)}`);
    // The same with the monitor blinded while the worker maps its library (the registering
    // transaction holds pg_proc, which the monitor's question reads): no answer is no pin, so
    // its own type decides then too; its exec comes after the lock is gone.
    const blind = psql(cluster, `begin; lock table pg_catalog.pg_proc in access exclusive mode; load '${libs.delayed}'; select pg_sleep(1.5); commit;`, { role: "etl" });
    assert.ok(blind.ok, blind.stderr);
    const [, , blindRun] = await reportLines(out, 3);
    assert.match(blindRun ?? "", /^exec /);
    assert.notEqual(blindRun, "exec 0", `the background worker exec'd as the archiver while the monitor was blind:\n${s.stderr().slice(-3000)}`);
    // Titles again: the session rewrites postmaster.pid's status line to "starting" (COPY TO a
    // file: a superuser's SQL), which once made the launcher take processes forked from then on
    // as forked before the server was ready, whose titles were a source; then, the monitor
    // blinded as above, it registers a worker whose bgw_name (so its title) is "archiver". The
    // session classifies itself first (auto_explain), so no new client reaches the launcher
    // meanwhile to say the server is up.
    const pidFile = join(cluster.dataDir, "postmaster.pid");
    const lines = readFileSync(pidFile, "utf8").replace(/\n$/, "").split("\n");
    lines[lines.length - 1] = "starting";
    const values = lines.map((l) => `('${l.replace(/'/g, "''")}')`).join(", ");
    const titled = psql(cluster, `load 'auto_explain'; copy (values ${values}) to '${pidFile}'; select pg_sleep(1); begin; lock table pg_catalog.pg_proc in access exclusive mode; load '${libs.titled}'; select pg_sleep(1.5); commit;`, { role: "etl" });
    assert.ok(titled.ok, titled.stderr);
    const [, , , titledRun] = await reportLines(out, 4);
    assert.match(titledRun ?? "", /^exec /);
    assert.notEqual(titledRun, "exec 0", `a background worker titled "archiver" exec'd while postmaster.pid said "starting":\n${s.stderr().slice(-3000)}`);
  } finally {
    await stop(s);
  }
});

test("code in a backend registers a background worker that makes itself alice's session: it must not get alice's exec", {
  skip,
  timeout: 120_000,
}, async () => {
  const policy = writePolicy(`${profile}\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n`);
  const s = await startReady(cluster, ["--policy", policy]);
  try {
    // The roles are the first test's (the same cluster); alice may log in, etl is the attacker.
    query(cluster, "create role alice login");
    writeFileSync(out, "");
    const attack = psql(cluster, `load '${libs.session}'`, { role: "etl" });
    assert.ok(attack.ok, attack.stderr);
    const [run] = await reportLines(out, 1);
    assert.match(run ?? "", /^exec /, `the worker got no client socket (${run}):\n${s.stderr().slice(-3000)}`);
    assert.notEqual(run, "exec 0", `etl's background worker exec'd as alice's session:\n${s.stderr().slice(-3000)}`);
  } finally {
    await stop(s);
  }
});
