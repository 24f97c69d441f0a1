import { test } from "node:test";
import assert from "node:assert/strict";
import { auditAction, clientDenialEvent, type NarrowedSession } from "./client-denials.js";
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

test("a record is logged for a narrowed session and the programs it started, by pid and start time", () => {
  const procs = new Map([[500, { ppid: 100, start: "50" }], [600, { ppid: 500, start: "60" }], [700, { ppid: 100, start: "70" }]]);
  const narrowed = new Map<number, NarrowedSession>([[500, { start: "50", ctx: { context: "session", role: "alice", database: "db" } }]]);
  const io = { now: () => 0, stat: (p: number) => procs.get(p), title: (p: number) => `t${p}` };
  const [own, child, other] = parseKmsgSeccomp([rec(1, 500, 217, "0x50000"), rec(2, 600, 59, "0x50000"), rec(3, 700, 217, "0x50000")], "x86_64", 0);
  const e = clientDenialEvent(own!, narrowed, 101, io);
  assert.equal(e?.syscall, "getdents64");
  assert.equal(e?.role, "alice");
  assert.equal(e?.errno, undefined, "the record has no errno");
  assert.equal(e?.action, "error");
  assert.equal(clientDenialEvent(child!, narrowed, 101, io)?.decidedBy, 500);
  assert.equal(clientDenialEvent(other!, narrowed, 101, io), undefined, "another session, not narrowed");
  // The same pid, restarted (another start time): not the narrowed session.
  const reused = new Map<number, NarrowedSession>([[500, { start: "49", ctx: { context: "session" } }]]);
  assert.equal(clientDenialEvent(own!, reused, 101, io), undefined);
  // Gone at once (popen's child): taken when it ran as the server's user, and only then.
  const [gone, stranger] = parseKmsgSeccomp([rec(4, 900, 59, "0x50000"), rec(5, 901, 59, "0x50000", 0)], "x86_64", 0);
  assert.equal(clientDenialEvent(gone!, narrowed, 101, io)?.context, "session");
  assert.equal(clientDenialEvent(stranger!, narrowed, 101, io), undefined);
  assert.equal(clientDenialEvent(gone!, new Map(), 101, io), undefined, "nothing narrowed: nothing taken");
  const [goneKilled] = parseKmsgSeccomp([rec(6, 902, 59, "0x80000000")], "x86_64", 0);
  assert.equal(clientDenialEvent(goneKilled!, narrowed, 101, io), undefined, "a kill of a process gone: any filter's, not taken");
  // The narrowed session itself, exited before its record was read: still its role.
  procs.delete(500);
  assert.equal(clientDenialEvent(own!, narrowed, 101, io)?.role, "alice");
});
