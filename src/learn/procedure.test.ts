import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { rateLimitNotes, stopByPid, timedCheckpointsQuery } from "./procedure.js";

test("timed checkpoints: only the view the server's major has", () => {
  assert.match(timedCheckpointsQuery(15), /pg_stat_bgwriter/);
  assert.match(timedCheckpointsQuery(16), /pg_stat_bgwriter/);
  assert.match(timedCheckpointsQuery(17), /pg_stat_checkpointer/);
  assert.match(timedCheckpointsQuery(18), /pg_stat_checkpointer/);
});

test("stopByPid: a process that ignores SIGINT and SIGQUIT is killed by its pid after the grace periods", async () => {
  const child = spawn("sh", ["-c", "trap '' INT QUIT; while :; do sleep 0.05; done"], { stdio: "ignore" });
  let done = false;
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on("exit", (_c, sig) => ((done = true), res(sig))));
  await new Promise((r) => setTimeout(r, 200));
  const lines: string[] = [];
  const t0 = Date.now();
  const cancel = stopByPid(child.pid!, "SIGINT", () => done, (l) => lines.push(l), 300, 300);
  const sig = await exited;
  cancel();
  assert.equal(sig, "SIGKILL");
  assert.ok(Date.now() - t0 >= 550, "after both grace periods");
  assert.equal(lines.length, 2, lines.join("\n"));
  assert.match(lines[0]!, /did not stop within 0.3 s: immediate stop \(SIGQUIT\)/);
  assert.match(lines[1]!, /did not stop: SIGKILL/);
});

test("stopByPid: nothing more once the process is gone", async () => {
  const child = spawn("sleep", ["100"], { stdio: "ignore" });
  let done = false;
  const exited = new Promise<NodeJS.Signals | null>((res) => child.on("exit", (_c, sig) => ((done = true), res(sig))));
  const lines: string[] = [];
  stopByPid(child.pid!, "SIGINT", () => done, (l) => lines.push(l), 100, 100);
  assert.equal(await exited, "SIGINT");
  await new Promise((r) => setTimeout(r, 300));
  assert.deepEqual(lines, []);
});

test("rate-limit notes: counted, one summary line", () => {
  const r = rateLimitNotes();
  assert.equal(r.summary(), undefined);
  assert.equal(r.take("workload done"), false);
  assert.equal(r.take("pg_seccomp: violation-log rate limit reached (pid 12); further events are suppressed and counted"), true);
  assert.equal(r.take("pg_seccomp: 40 violation-log events suppressed in the last 1 s (rate limit)"), true);
  assert.equal(r.take("pg_seccomp: 2 violation-log events suppressed in the last 1 s (rate limit)"), true);
  assert.match(r.summary()!, /^rate limit: the supervisor wrote 42 fewer violation-log records than calls/);
});
