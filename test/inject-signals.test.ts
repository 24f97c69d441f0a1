// Running seccomp(2) inside another process (src/kernel/ptrace.ts: the supervisor holds each
// classified process's context in the kernel this way) while signals keep arriving: a signal that
// comes between the single step's start and the system call instruction gives a
// signal-delivery stop first, with the call not run. Its registers then still hold the call's
// number (seccomp's, 317 on x86_64), which was read as TSYNC's "thread 317 has filters of its
// own", and the supervisor killed the process (fail closed): a parallel worker's SIGUSR1 to its
// leader did that to a backend in attacks/worker-row-forge.test.ts. Every injection here must
// succeed, in the polling path the supervisor uses and in the blocking one, and the target must
// still get its signals.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { injectSeccompFilter, PendingInjection } from "../src/kernel/index.js";
import { BPF_RET, stmt } from "../src/bpf/insn.js";
import { SECCOMP_RET_ALLOW } from "../src/seccomp/actions.js";
import { integrationSkip } from "./support/server.js";

const skip = integrationSkip();
const ALLOW_ALL = [stmt(BPF_RET, SECCOMP_RET_ALLOW)];
const ROUNDS = 150;

function filters(pid: number): number {
  return Number(/^Seccomp_filters:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]);
}

test("injections into a process that is being sent signals all take, and its signals still arrive", { skip, timeout: 120_000 }, async () => {
  // The target counts SIGUSR1 in a shell loop (a trap runs between commands); a second shell
  // sends it SIGUSR1 without pause. The target is a grandchild, as the supervisor's targets are
  // not its children: node reaps its own children with waitpid, which would take the target's
  // ptrace stops before the injection sees them.
  const parent = spawn("sh", ["-c", `sh -c 'trap "n=\\$((n+1))" USR1; echo ready; while :; do :; done' & echo $!; wait`], { stdio: ["ignore", "pipe", "ignore"] });
  const lines: string[] = [];
  await new Promise<void>((res) => {
    let buf = "";
    parent.stdout!.on("data", (d: Buffer) => {
      buf += d.toString();
      const l = buf.split("\n").filter(Boolean);
      if (l.length >= 2) {
        lines.push(...l);
        res();
      }
    });
  });
  const pid = Number(lines.find((l) => /^\d+$/.test(l)));
  assert.ok(pid > 0, lines.join(" "));
  const sender = spawn("sh", ["-c", `while kill -USR1 ${pid} 2>/dev/null; do :; done`], { stdio: "ignore" });
  try {
    await new Promise((r) => setTimeout(r, 100));
    const before = filters(pid);
    for (let i = 0; i < ROUNDS; i++) {
      if (i % 2 === 0) {
        injectSeccompFilter(pid, ALLOW_ALL, { allThreads: true });
      } else {
        const p = new PendingInjection(pid, ALLOW_ALL, { allThreads: true });
        const deadline = Date.now() + 10_000;
        while (p.poll() !== "done") {
          assert.ok(Date.now() < deadline, "the injection did not finish");
          await new Promise((r) => setImmediate(r));
        }
      }
    }
    assert.equal(filters(pid), before + ROUNDS, "every injection installed one filter");
    assert.ok(existsSync(`/proc/${pid}`), "the target is alive");
    // Its signal mask is back as it was (nothing blocked), and what was sent meanwhile arrived.
    sender.kill("SIGKILL");
    await new Promise((r) => setTimeout(r, 300));
    const status = readFileSync(`/proc/${pid}/status`, "utf8");
    const field = (name: string) => BigInt(`0x${new RegExp(`^${name}:\\s+([0-9a-f]+)`, "m").exec(status)?.[1] ?? "ff"}`);
    assert.equal(field("SigBlk"), 0n, status);
    assert.equal(field("SigPnd") | field("ShdPnd"), 0n, status);
  } finally {
    sender.kill("SIGKILL");
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
    parent.kill("SIGKILL");
  }
});
