// The policy's action ranking is the kernel's stacking rule on the seccomp actions the policy
// actions compile to: one rule, not two.

import { test } from "node:test";
import assert from "node:assert/strict";
import { ACTION_KINDS, actionRank, moreRestrictive, seccompActionFor, type Action } from "./actions.js";
import { seccompRet, stackedRet } from "../seccomp/index.js";

const ret = (a: Action) => seccompRet(seccompActionFor(a.kind), a.errno ?? 0);
const actions: Action[] = [
  { kind: "allow" }, { kind: "log" }, { kind: "error", errno: 1 }, { kind: "error", errno: 13 }, { kind: "trap" }, { kind: "kill" },
];

test("moreRestrictive(first, second) is what the kernel returns with second installed after first", () => {
  for (const first of actions) {
    for (const second of actions) {
      assert.equal(ret(moreRestrictive(first, second)), stackedRet([ret(second), ret(first)]), `${first.kind}/${first.errno} then ${second.kind}/${second.errno}`);
    }
  }
});

test("actionRank orders the kinds kill > trap > terminate > error > log > allow; each but terminate is its own seccomp action", () => {
  const ranked = [...ACTION_KINDS].sort((a, b) => actionRank({ kind: b }) - actionRank({ kind: a }));
  assert.deepEqual(ranked, ["kill", "trap", "terminate", "error", "log", "allow"]);
  // terminate is an errno in the kernel; run's supervisor ends the session after it.
  assert.equal(seccompActionFor("terminate"), "ERRNO");
  const own = ACTION_KINDS.filter((k) => k !== "terminate");
  assert.equal(new Set(own.map(seccompActionFor)).size, own.length);
});
