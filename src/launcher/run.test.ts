import { test } from "node:test";
import assert from "node:assert/strict";
import { dataDirOf, missingCapabilities } from "./run.js";

test("the data directory comes from -D, -DDIR, --pgdata or PGDATA", () => {
  assert.equal(dataDirOf(["-D", "/d"]), "/d");
  assert.equal(dataDirOf(["-c", "x=1", "-D/d2"]), "/d2");
  assert.equal(dataDirOf(["--pgdata=/d3"]), "/d3");
  assert.equal(dataDirOf(["-p", "5432"], { PGDATA: "/env" }), "/env");
  assert.equal(dataDirOf([], {}), undefined);
});

test("missing capabilities are named with the reason", () => {
  const all = "CapEff:\t000001ffffffffff\n";
  assert.deepEqual(missingCapabilities(true, all), []);
  const noPtraceNoKill = `CapEff:\t${(0x1ffffffffffn & ~(1n << 19n) & ~(1n << 5n)).toString(16)}\n`;
  assert.deepEqual(missingCapabilities(true, noPtraceNoKill).map((m) => m.split(" ")[0]), ["CAP_KILL", "CAP_SYS_PTRACE"]);
  assert.deepEqual(missingCapabilities(false, noPtraceNoKill).map((m) => m.split(" ")[0]), ["CAP_KILL"], "no supervisor: no pidfd_getfd");
});
