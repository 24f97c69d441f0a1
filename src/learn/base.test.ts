import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { parsePolicyText } from "../policy/policy.js";
import { floorLists, hotBaseText, parseHotCalls, readFloor, readHotCalls } from "../policy/bundled-lists.js";
import { parseKmsgKills } from "./procedure.js";
import { renderLearnedPolicy } from "./learn.js";
import { parseFloor } from "../analyze/profile.js";
import { contextDecisions, decisionFor } from "../policy/decision.js";
import { syscallNumber } from "../syscalls/index.js";

const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

test("one floor: learn and the profile builder read profiles/floor.conf", () => {
  assert.equal(readFloor(), readFileSync(resolve(ROOT, "profiles/floor.conf"), "utf8"));
  assert.match(readFileSync(resolve(ROOT, "scripts/profile/build.ts"), "utf8"), /join\(repo, "profiles", "floor\.conf"\)/);
});

test("hot calls: names only; the default base is the floor plus them, a valid policy", () => {
  assert.deepEqual(parseHotCalls("# c\nread, write\nlseek # x\n\n"), ["read", "write", "lseek"]);
  assert.throws(() => parseHotCalls("read; rm -rf"), /not a syscall name/);
  const hot = readHotCalls();
  assert.ok(hot.includes("lseek") && hot.includes("recvfrom"));
  const p = parsePolicyText(hotBaseText(readFloor(), hot), "base.conf");
  const allowed = new Set(p.global.entries.filter((e) => e.action.kind === "allow" && e.kind === "syscall").map((e) => e.name));
  for (const n of [...hot, ...floorLists(readFloor()).allow]) assert.ok(allowed.has(n), n);
  assert.ok(p.global.entries.some((e) => e.action.kind === "kill"));
});

test("a learned policy keeps the floor in every context and its kill list, even with --base none", () => {
  const learned = new Map([["checkpointer", new Map([["fsync", { count: 1, first: { time: "t", pid: 1, process: "p", context: "checkpointer" } }]])]]);
  const floor = parseFloor(readFloor());
  const text = renderLearnedPolicy({
    learned, base: undefined, baseLabel: "none", arch: "x86_64", server: "pg", rounds: 1, roundStart: "a", roundEnd: "b",
    floor: { allow: floor.allow, kill: floor.kill.split(", "), tagOf: floor.tagOf, reasons: floor.reasons, harden: floor.harden },
  });
  assert.match(text, /^global_syscall_kill = '@obsolete/m);
  assert.match(text, /^#   brk: floor \[malloc\]$/m);
  const p = parsePolicyText(text, "out.conf");
  for (const context of ["checkpointer", "startup", "archiver", "session"] as const) {
    const cd = contextDecisions(p, "x86_64", { context });
    for (const n of ["brk", "sync_file_range", "tgkill", "fsync"]) {
      const d = decisionFor(cd, syscallNumber("x86_64", n)!);
      assert.ok(d.kind === "leaf" && d.action.kind === "allow", `${n} in ${context}`);
    }
  }
});

test("kmsg seccomp kill records after a sequence number", () => {
  const recs = [
    '6,100,1,-;audit: type=1326 audit(1732800000.123:2): pid=42 comm="postgres" exe="/x" sig=31 arch=c000003e syscall=107 compat=0',
    '6,101,1,-;audit: type=1326 audit(1732800000.123:3): pid=43 comm="postgres" exe="/x" sig=31 arch=c000003e syscall=12 compat=0',
    '6,102,1,-;audit: type=1326 audit(1732800000.123:4): pid=44 comm="postgres" exe="/x" sig=0 arch=c000003e syscall=12 compat=0',
  ];
  assert.deepEqual(parseKmsgKills(recs, "x86_64", 100), [{ seq: 101, pid: 43, syscall: "brk" }]);
  // One parser with audit2allow: a comm that imitates fields, as the kernel hex-encodes it, moves nothing;
  // a call through another ABI is named as such.
  const evil = Buffer.from('x" pid=1 sig=31 syscall=59').toString("hex").toUpperCase();
  const more = [
    `6,103,1,-;audit: type=1326 audit(1732800000.123:5): pid=45 comm=${evil} exe="/x" sig=31 arch=c000003e syscall=12 compat=0\n SUBSYSTEM=x`,
    '6,104,1,-;audit: type=1326 audit(1732800000.123:6): pid=46 comm="postgres" exe="/x" sig=31 arch=40000003 syscall=11 compat=1',
  ];
  assert.deepEqual(parseKmsgKills(more, "x86_64", 100), [{ seq: 103, pid: 45, syscall: "brk" }, { seq: 104, pid: 46, syscall: "i386 #11" }]);
});
