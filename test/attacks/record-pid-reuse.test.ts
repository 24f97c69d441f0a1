// The server's OS user against the attribution of the kernel's seccomp records
// (src/supervisor/client-denials.ts): a record carries a pid, not a start time. A server process
// ends (here: the attacker's own session, terminated); the attacker has already cycled the pid
// space to just below its pid, so its next fork gets that pid, and that child makes the kernel
// record a killed init_module. The record must not be attributed to the session that had the pid.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, logFile, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath, hostProfilePath } from "../support/paths.js";
import type { ViolationEvent } from "../../src/host/violation-event.js";

const skip = integrationSkip() || (spawnSync("cc", ["--version"]).status !== 0 ? "no C compiler (cc)" : false);
const profile = readFileSync(hostProfilePath(), "utf8");

let cluster: Cluster;
let dir: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-reuse-"));
  chmodSync(dir, 0o755);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

function events(path: string): ViolationEvent[] {
  if (!existsSync(path)) return [];
  return readFileSync(path, "utf8").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as ViolationEvent);
}

test("a record made under a dead session's reused pid is not attributed to that session", { skip, timeout: 420_000 }, async (t) => {
  let staged = false;
  const forger = join(dir, "forge");
  const cc = spawnSync("cc", ["-O2", "-o", forger, repoPath("test/fixtures/attack/pid-reuse-forge.c")], { encoding: "utf8" });
  assert.equal(cc.status, 0, cc.stderr);
  const asServerUser = (args: string[]) => spawnSync(forger, args, { uid: cluster.user.uid, gid: cluster.user.gid, encoding: "utf8", timeout: 90_000 });
  const log = logFile("reuse.jsonl");
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n"), "--log", log]);
  try {
    query(cluster, "create role alice login in role pg_execute_server_program");
    // The pid cycling can lose its pid to any other process forking meanwhile (a busy machine):
    // the attack is tried again, up to three times, until its child got the session's pid.
    let hit = "";
    for (let attempt = 0; attempt < 3 && !/^forged /.test(hit); attempt++) {
      // alice's session: classified (its program's exec goes to the supervisor), then it waits.
      const session = spawn(join(cluster.binDir, "psql"), ["-X", "-At", "-c", "select pg_backend_pid()", "-c", "copy (select 1) to program 'cat > /dev/null'", "-c", "select pg_sleep(60)"], {
        env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "alice", PGDATABASE: "postgres" },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let said = "";
      session.stdout.on("data", (d: Buffer) => (said += d.toString()));
      const ended = new Promise<void>((r) => session.on("exit", () => r()));
      await waitFor(() => /^\d+\nCOPY 1/m.test(said), 15_000, "alice's session to run its program");
      const backend = Number(said.split("\n")[0]);
      // The server's user: the pid space up to just below the session's pid.
      const near = asServerUser(["approach", String(backend)]);
      hit = near.stdout + near.stderr;
      // The session ends (the attacker's own; pg_terminate_backend stands for a disconnect).
      assert.ok(psql(cluster, `select pg_terminate_backend(${backend})`).ok);
      await ended;
      await waitFor(() => !existsSync(`/proc/${backend}`), 5000, "the backend to be gone");
      if (!/^near /.test(hit)) continue;
      const r = asServerUser(["hit", String(backend)]);
      hit = r.stdout + r.stderr;
    }
    staged = /^forged /.test(hit);
    if (!staged) t.skip(`the attack could not be staged: other processes took the session's pid first, 3 times (${hit.trim()}); nothing was attributed or not`);
    await new Promise((r) => setTimeout(r, 1500)); // the launcher reads the kernel's records 4 times a second
  } finally {
    await stop(s);
  }
  if (!staged) return;
  const forged = events(log).filter((e) => e.syscall === "init_module");
  assert.deepEqual(forged, [], "the forged record was attributed to a server process");
});
