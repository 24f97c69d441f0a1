// The seccomp ABI module: the precedence table against the kernel's comparison, the stacking
// rule, names and values both ways, AUDIT_ARCH tokens, and the seccomp_data layout.

import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import {
  AUDIT_ARCH,
  AUDIT_ARCH_NAMES,
  SECCOMP_DATA_ARGS,
  SECCOMP_DATA_SIZE,
  SECCOMP_RET_ACTIONS,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS,
  SECCOMP_RET_KILL_THREAD,
  SECCOMP_RET_LOG,
  SECCOMP_RET_TRACE,
  SECCOMP_RET_TRAP,
  SECCOMP_RET_USER_NOTIF,
  actionOnly,
  argOffset,
  dataFieldName,
  describeSeccompRet,
  formatSeccompRet,
  isMoreRestrictive,
  restrictiveness,
  retAction,
  retData,
  seccompActionNamed,
  seccompActionOf,
  seccompRet,
  stackedRet,
} from "./index.js";

const ERRNO = (e: number) => (SECCOMP_RET_ERRNO | e) >>> 0;
const DATA = [0, 1, 13, 0x7fff, 0xffff];

test("the precedence table is the kernel's order: each action strictly more restrictive than the next", () => {
  // linux/seccomp.h, in the order the header documents them.
  assert.deepEqual(SECCOMP_RET_ACTIONS.map((a) => a.value >>> 0), [
    SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_KILL_THREAD, SECCOMP_RET_TRAP, SECCOMP_RET_ERRNO,
    SECCOMP_RET_USER_NOTIF, SECCOMP_RET_TRACE, SECCOMP_RET_LOG, SECCOMP_RET_ALLOW,
  ].map((v) => v >>> 0));
  const rets = SECCOMP_RET_ACTIONS.map((a) => a.value);
  for (let i = 0; i < rets.length; i++) {
    for (let j = 0; j < rets.length; j++) {
      assert.equal(isMoreRestrictive(rets[i]!, rets[j]!), i < j, `${SECCOMP_RET_ACTIONS[i]!.name} vs ${SECCOMP_RET_ACTIONS[j]!.name}`);
      assert.equal(restrictiveness(rets[i]!) > restrictiveness(rets[j]!), i < j);
    }
  }
  // Data bits never change the order.
  assert.equal(isMoreRestrictive(ERRNO(1), ERRNO(0xffff)), false);
  assert.equal(isMoreRestrictive(ERRNO(0xffff), (SECCOMP_RET_USER_NOTIF | 0) >>> 0), true);
  assert.ok(actionOnly(SECCOMP_RET_KILL_PROCESS) < 0, "KILL_PROCESS is negative as a signed action");
});

test("stacking: the most restrictive action wins, by the precedence table", () => {
  const rets = SECCOMP_RET_ACTIONS.map((a) => a.value >>> 0);
  for (let i = 0; i < rets.length; i++) {
    for (let j = 0; j < rets.length; j++) {
      assert.equal(stackedRet([rets[i]!, rets[j]!]), rets[Math.min(i, j)]!, `${describeSeccompRet(rets[i]!)} + ${describeSeccompRet(rets[j]!)}`);
    }
  }
  assert.equal(stackedRet([]), SECCOMP_RET_ALLOW);
  assert.equal(stackedRet([SECCOMP_RET_ALLOW, SECCOMP_RET_ALLOW, SECCOMP_RET_LOG]), SECCOMP_RET_LOG);
});

test("stacking: among equal actions the most recently installed filter's data wins", () => {
  // newestFirst[0] is the newest filter's.
  assert.equal(stackedRet([ERRNO(13), ERRNO(1)]), ERRNO(13));
  assert.equal(stackedRet([ERRNO(1), ERRNO(13)]), ERRNO(1));
  assert.equal(stackedRet([SECCOMP_RET_TRAP | 7, SECCOMP_RET_TRAP | 9]), (SECCOMP_RET_TRAP | 7) >>> 0);
  // ... but a more restrictive action from an older filter beats the newest one.
  assert.equal(stackedRet([ERRNO(13), SECCOMP_RET_ALLOW, SECCOMP_RET_KILL_THREAD]), SECCOMP_RET_KILL_THREAD);
  // An unknown action compares by its value, as the kernel compares it (0x00010000 sits between KILL_THREAD and TRAP).
  assert.equal(stackedRet([SECCOMP_RET_TRAP, 0x00010000]), 0x00010000);
});

test("names and values round-trip, with every data value", () => {
  assert.equal(new Set(SECCOMP_RET_ACTIONS.map((a) => a.name)).size, SECCOMP_RET_ACTIONS.length);
  assert.equal(new Set(SECCOMP_RET_ACTIONS.map((a) => a.value)).size, SECCOMP_RET_ACTIONS.length);
  for (const info of SECCOMP_RET_ACTIONS) {
    assert.equal(seccompActionNamed(info.name), info);
    assert.equal(retData(info.value), 0, `${info.name} has no data bits`);
    for (const data of DATA) {
      const ret = seccompRet(info.name, data);
      assert.equal(seccompActionOf(ret), info);
      assert.equal(retAction(ret), info.value >>> 0);
      assert.equal(retData(ret), data);
      const text = formatSeccompRet(ret)!;
      assert.equal(text, info.alwaysShowData || data ? `${info.name}(${data})` : info.name);
      const m = /^(\w+)(?:\((\d+)\))?$/.exec(text)!;
      assert.equal(seccompRet(seccompActionNamed(m[1]!)!.name, Number(m[2] ?? 0)), ret, text);
    }
  }
  assert.equal(seccompRet("ERRNO", 0x10001), ERRNO(1), "only the low 16 bits are data");
  assert.equal(seccompActionNamed("KILL"), undefined);
  assert.equal(seccompActionNamed("allow"), undefined);
});

test("values that are no action", () => {
  for (const ret of [0x00010000, 0x12340000, 0x7ffe0000, 0xffff0000]) {
    assert.equal(seccompActionOf(ret), undefined);
    assert.equal(formatSeccompRet(ret), undefined);
    assert.equal(describeSeccompRet(ret | 5), `UNKNOWN(0x${((ret | 5) >>> 0).toString(16).padStart(8, "0")})`);
  }
  assert.equal(describeSeccompRet(-0x80000000), "KILL_PROCESS"); // signed view of 0x80000000
  assert.equal(describeSeccompRet(ERRNO(13)), "ERRNO(13)");
  assert.equal(describeSeccompRet(SECCOMP_RET_ALLOW | 5), "ALLOW(5)");
});

test("the names match the kernel's actions_avail", () => {
  assert.deepEqual(SECCOMP_RET_ACTIONS.map((a) => a.availName), ["kill_process", "kill_thread", "trap", "errno", "user_notif", "trace", "log", "allow"]);
  const avail = "/proc/sys/kernel/seccomp/actions_avail";
  if (existsSync(avail)) {
    const names = new Set(SECCOMP_RET_ACTIONS.map((a) => a.availName));
    for (const n of readFileSync(avail, "utf8").trim().split(/\s+/)) assert.ok(names.has(n), `${n} from ${avail} is in the table`);
  }
});

test("AUDIT_ARCH tokens and names agree", () => {
  for (const [token, value] of Object.entries(AUDIT_ARCH)) assert.equal(AUDIT_ARCH_NAMES.get(value), token);
  assert.equal(AUDIT_ARCH.x86_64, 0xc000003e);
  assert.equal(AUDIT_ARCH.aarch64, 0xc00000b7);
  assert.equal(new Set(AUDIT_ARCH_NAMES.values()).size, AUDIT_ARCH_NAMES.size);
});

test("seccomp_data: every word has one name, and argOffset agrees with it", () => {
  const names = new Set<string>();
  for (let off = 0; off < SECCOMP_DATA_SIZE; off += 4) names.add(dataFieldName(off)!);
  assert.equal(names.size, SECCOMP_DATA_SIZE / 4);
  for (let i = 0; i < 6; i++) {
    assert.equal(dataFieldName(argOffset(i, "lo")), `args[${i}].lo`);
    assert.equal(dataFieldName(argOffset(i, "hi")), `args[${i}].hi`);
  }
  assert.equal(argOffset(0, "lo"), SECCOMP_DATA_ARGS);
  assert.equal(argOffset(5, "hi"), SECCOMP_DATA_SIZE - 4);
  for (const off of [-4, 2, SECCOMP_DATA_SIZE, 1.5]) assert.equal(dataFieldName(off), undefined);
});
