// The kernel's fork events (src/kernel/proc-events.ts), read for real: a process started after
// the subscription is announced with its parent, and a thread is told from a process.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { closeProcEvents, openProcEvents, parseForkEvents, readForkEvents } from "../src/kernel/index.js";

const skip = process.getuid?.() !== 0 ? "needs root (CAP_NET_ADMIN)" : false;

test("the proc connector announces a new process with its parent", { skip }, () => {
  const fd = openProcEvents();
  try {
    const child = spawnSync("/bin/true");
    assert.equal(child.status, 0);
    const { forks, lost } = readForkEvents(fd);
    assert.equal(lost, false);
    const mine = forks.find((f) => f.childTgid === child.pid);
    assert.ok(mine, `a fork event for ${child.pid}: ${JSON.stringify(forks.slice(0, 5))}`);
    assert.equal(mine.childPid, mine.childTgid, "a process, not a thread");
    assert.equal(mine.parentTgid, process.pid);
  } finally {
    closeProcEvents(fd);
  }
});

test("fork events: a datagram with a non-fork event and a truncated one yields only whole fork events", () => {
  const ev = (what: number, parent: number, pid: number, tgid: number) => {
    const b = Buffer.alloc(16 + 20 + 40);
    b.writeUInt32LE(b.length, 0);
    b.writeUInt32LE(what, 36);
    b.writeInt32LE(parent, 36 + 16);
    b.writeInt32LE(parent, 36 + 20);
    b.writeInt32LE(pid, 36 + 24);
    b.writeInt32LE(tgid, 36 + 28);
    return b;
  };
  const data = Buffer.concat([ev(1, 10, 11, 11), ev(0x80000000, 10, 12, 12), ev(1, 10, 13, 10)]);
  assert.deepEqual(parseForkEvents(data), [{ parentTgid: 10, childPid: 11, childTgid: 11 }, { parentTgid: 10, childPid: 13, childTgid: 10 }]);
  assert.deepEqual(parseForkEvents(data.subarray(0, data.length - 8)), [{ parentTgid: 10, childPid: 11, childTgid: 11 }]);
});
