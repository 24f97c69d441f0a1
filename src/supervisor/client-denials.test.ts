import { test } from "node:test";
import assert from "node:assert/strict";
import { auditAction, kernelRecordEvent, type KnownProcess } from "./client-denials.js";
import { parseKmsgSeccomp } from "../host/kmsg.js";

const rec = (seq: number, pid: number, nr: number, code: string, uid = 101, exe = "/usr/lib/postgresql/15/bin/postgres") =>
  `5,${seq},8303209687,-;audit: type=1326 audit(1795899618.952:249): auid=4294967295 uid=${uid} gid=104 ses=4294967295 pid=${pid} comm="postgres" exe="${exe}" sig=0 arch=c000003e syscall=${nr} compat=0 ip=0x7fd2d6225517 code=${code}\n`;

test("kmsg seccomp records: pid and uid from the head, the call and code from the last tail (comm and exe are the process's)", () => {
  const forged = rec(12, 700, 217, "0x50001", 101, "/tmp/x sig=0 arch=c000003e syscall=59 compat=0 ip=0x1 code=0x7fff0000");
  const parsed = parseKmsgSeccomp([rec(10, 500, 217, "0x50000"), rec(11, 501, 59, "0x80000000"), forged, "6,13,1,-;hello\n"], "x86_64", 10);
  assert.deepEqual(parsed.map((p) => [p.seq, p.pid, p.uid, p.syscall, p.code.toString(16)]), [
    [11, 501, 101, "execve", "80000000"],
    [12, 700, 101, "getdents64", "50001"],
  ]);
});

test("audit codes: errno with its number, kill, trap, log; user_notif and allow are not taken", () => {
  assert.deepEqual(auditAction(0x50000), { action: "error" });
  assert.deepEqual(auditAction(0x80000000), { action: "kill" });
  assert.deepEqual(auditAction(0x7ffc0000), { action: "log" });
  assert.equal(auditAction(0x7fc00000), undefined);
  assert.equal(auditAction(0x7fff0000), undefined);
});

test("a record is logged for a known process and the programs it runs, by pid and start time; any other is unknown", () => {
  const procs = new Map([[500, { ppid: 100, start: "50" }], [600, { ppid: 500, start: "60" }], [700, { ppid: 100, start: "70" }], [800, { ppid: 1, start: "80" }]]);
  const known = new Map<number, KnownProcess>([[500, { start: "50", ctx: { context: "session", role: "alice", database: "db" }, narrowed: true }]]);
  const io = { now: () => 0, stat: (p: number) => procs.get(p), title: (p: number) => `t${p}` };
  const [own, child, other] = parseKmsgSeccomp([rec(1, 500, 217, "0x50000"), rec(2, 600, 59, "0x50000", 101, "/usr/bin/cat"), rec(3, 700, 217, "0x50000")], "x86_64", 0);
  const e = kernelRecordEvent(own!, known, io);
  assert.ok(e && e !== "unknown");
  assert.equal(e.syscall, "getdents64");
  assert.equal(e.role, "alice");
  assert.equal(e.errno, undefined, "the record has no errno");
  assert.equal(e.action, "error");
  assert.equal(e.program, undefined, "the known process itself");
  const c = kernelRecordEvent(child!, known, io);
  assert.ok(c && c !== "unknown");
  assert.equal(c.decidedBy, 500);
  assert.equal(c.program, "/usr/bin/cat", "a program the session runs is named");
  assert.equal(kernelRecordEvent(other!, known, io), "unknown", "a process the supervisor never classified");
  // The same pid, restarted (another start time): not the known process.
  const reused = new Map<number, KnownProcess>([[500, { start: "49", ctx: { context: "session" } }]]);
  assert.equal(kernelRecordEvent(own!, reused, io), "unknown");
});

test("forged records: the server's OS user's own process, alive or gone, is never attributed", () => {
  // A process of the server's user (uid 101) outside the server installs a logging filter, makes
  // a denied call and exits: before, a gone process of that uid was taken for a session's child.
  const procs = new Map([[500, { ppid: 100, start: "50" }], [800, { ppid: 1, start: "80" }]]);
  const known = new Map<number, KnownProcess>([[500, { start: "50", ctx: { context: "session" }, narrowed: true }]]);
  const io = { now: () => 0, stat: (p: number) => procs.get(p), title: () => "" };
  const [gone, alive, killed] = parseKmsgSeccomp([rec(4, 900, 175, "0x50000"), rec(5, 800, 101, "0x7ffc0000"), rec(6, 901, 165, "0x80000000")], "x86_64", 0);
  assert.equal(kernelRecordEvent(gone!, known, io), "unknown");
  assert.equal(kernelRecordEvent(alive!, known, io), "unknown");
  assert.equal(kernelRecordEvent(killed!, known, io), "unknown");
});

test("kills: a known backend killed in the kernel is still itself after it is gone; the record names the call and SIGSYS", () => {
  const procs = new Map<number, { ppid: number; start: string }>();
  const known = new Map<number, KnownProcess>([[500, { start: "50", ctx: { context: "session", role: "alice", database: "db" } }]]);
  const io = { now: () => 0, stat: (p: number) => procs.get(p), title: () => "" };
  const [kill] = parseKmsgSeccomp([rec(7, 500, 165, "0x80000000")], "x86_64", 0);
  const e = kernelRecordEvent(kill!, known, io);
  assert.ok(e && e !== "unknown");
  assert.equal(e.syscall, "mount");
  assert.equal(e.action, "kill");
  assert.equal(e.signal, "SIGSYS");
  assert.equal(e.role, "alice");
  assert.equal(e.process, "postgres", "the record's comm when the process is gone");
});
