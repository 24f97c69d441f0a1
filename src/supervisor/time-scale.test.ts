import { test } from "node:test";
import assert from "node:assert/strict";
import { timeScale } from "./time-scale.js";

test("PG_SECCOMP_TIME_SCALE stretches the launcher's limits: 1 unless a number from 1 up, at most 100", () => {
  assert.equal(timeScale({}), 1);
  assert.equal(timeScale({ PG_SECCOMP_TIME_SCALE: "8" }), 8);
  assert.equal(timeScale({ PG_SECCOMP_TIME_SCALE: "2.5" }), 2.5);
  // Never shorter than the defaults, never unbounded, never NaN.
  for (const v of ["0", "0.5", "-3", "abc", "", "Infinity"]) assert.equal(timeScale({ PG_SECCOMP_TIME_SCALE: v }), 1, v);
  assert.equal(timeScale({ PG_SECCOMP_TIME_SCALE: "1e9" }), 100);
});
