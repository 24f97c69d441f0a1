// The server's OS user against `run --in-place` started as that user (the pg_ctl wrapper's mode:
// the supervisor and its watchdog run as the server's user). Issue 16: it SIGKILLs the watchdog
// and SIGSTOPs the supervisor; routed calls then hang and nothing fails closed. The answer asked
// for: in that mode `run` refuses policies whose decisions differ per context (here a per-role
// allowance), saying why; or, if it starts, a stopped supervisor makes routed calls fail within
// seconds and the server stops. Either passes this test; a server that keeps serving while a
// routed call hangs fails it.

import { test, describe, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createCluster, destroyCluster, postmasterPid, query, waitReady, type Cluster } from "../../src/postgres/cluster.js";
import { BIN, integrationSkip, writePolicy } from "../support/server.js";
import { hostProfilePath } from "../support/paths.js";

const skip = integrationSkip();
const BIN_DIR = "/usr/lib/postgresql/15/bin";

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
  } catch {
    return "";
  }
}

describe("run --in-place as the server's user, a per-role policy, the supervisor stopped by that user", { skip }, () => {
  let cluster: Cluster;
  let launcher: ChildProcess | undefined;
  let out = "";
  let exited: { code: number | null } | undefined;
  const leftovers: number[] = [];

  before(async () => {
    if (skip) return;
    cluster = await createCluster({ binDir: BIN_DIR });
  });
  after(() => {
    for (const pid of leftovers) {
      try {
        process.kill(pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    const pm = cluster ? postmasterPid(cluster.dataDir) : undefined;
    if (pm) {
      try {
        process.kill(pm, "SIGQUIT");
      } catch {
        /* gone */
      }
    }
    if (cluster) setTimeout(() => destroyCluster(cluster), 2000);
  });

  test("refuses the policy, or a stopped supervisor fails routed calls and stops the server", async () => {
    const profile = readFileSync(hostProfilePath(), "utf8");
    const policy = writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n", "in-place-per-role.conf");
    const u = cluster.user;
    launcher = spawn(process.execPath, [BIN, "run", "--in-place", "--policy", policy, "--", join(BIN_DIR, "postgres"), "-D", cluster.dataDir], {
      uid: u.uid, gid: u.gid, cwd: "/", detached: true, stdio: ["ignore", "pipe", "pipe"],
      env: { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: "/", USER: u.name, LOGNAME: u.name },
    });
    launcher.stdout!.on("data", (d: Buffer) => (out += d.toString()));
    launcher.stderr!.on("data", (d: Buffer) => (out += d.toString()));
    launcher.on("exit", (code) => (exited = { code }));
    try {
      await waitReady(cluster, () => exited === undefined, 60_000);
    } catch {
      // Not started: it must be a refusal that says why.
      assert.notEqual(exited?.code, 0, out);
      assert.match(out, /per-(role|context)|differ/i, `a refusal naming the per-context rules\n${out}`);
      return;
    }
    query(cluster, "create role alice login; grant pg_execute_server_program to alice");
    const pm = postmasterPid(cluster.dataDir)!;
    const watchdog = readdirSync("/proc").filter((d) => /^\d+$/.test(d)).map(Number)
      .find((p) => new RegExp(`pg_seccomp-watchdog (\\d+) ${pm} `).test(cmdline(p)));
    assert.ok(watchdog, "the watchdog");
    const supervisor = Number(new RegExp(`pg_seccomp-watchdog (\\d+) ${pm} `).exec(cmdline(watchdog))![1]);
    leftovers.push(supervisor);
    // As the server's user: the watchdog killed, the supervisor stopped.
    const asServer = (args: string[]) => spawnSync("kill", args, { uid: u.uid, gid: u.gid });
    assert.equal(asServer(["-KILL", String(watchdog)]).status, 0);
    assert.equal(asServer(["-STOP", String(supervisor)]).status, 0);
    // A routed call (exec: allowed for alice, an error for other sessions) must not hang.
    const r = spawnSync(join(BIN_DIR, "psql"), ["-X", "-h", cluster.socketDir, "-p", String(cluster.port), "-U", "alice", "-d", "postgres", "-c", "copy (select 1) to program 'true'"], {
      encoding: "utf8", timeout: 20_000, uid: u.uid, gid: u.gid,
    });
    const hung = r.error !== undefined || r.signal !== null;
    await new Promise((res) => setTimeout(res, 5000));
    let serverAlive = true;
    try {
      process.kill(pm, 0);
    } catch {
      serverAlive = false;
    }
    assert.ok(!hung && !serverAlive, `routed call ${hung ? "hung for 20 s" : `returned (${r.stdout.trim()} ${r.stderr.trim()})`}; server ${serverAlive ? "still serving" : "stopped"} with its supervisor stopped by the server's user`);
  });
});
