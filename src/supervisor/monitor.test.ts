// The monitor's reading of its one query: the built-in catalog rows it checks, and the pid's row.

import { test } from "node:test";
import assert from "node:assert/strict";
import { activityQuery, BUILTINS, readActivityAnswer } from "./monitor.js";

const check: string[] = [...Object.values(BUILTINS.activity), BUILTINS.oidEqOperator.oid, BUILTINS.oidEqOperator.oprcode, ...Object.values(BUILTINS.oideq)];
const set = (rows: Array<Array<string | null>>) => [{ columns: [], rows, command: "SELECT 1" }];

test("the query names only pg_catalog objects, schema-qualified, and no function but pg_stat_get_activity", () => {
  const q = activityQuery(42, true);
  assert.match(q, /pg_catalog\.pg_stat_get_activity\('42'::pg_catalog\.int4\)/);
  assert.doesNotMatch(q, /pg_backend_pid|json_build_object|pg_stat_activity\b/);
  for (const m of q.matchAll(/OPERATOR\(([^)]*)\)/g)) assert.equal(m[1], "pg_catalog.=");
  assert.throws(() => activityQuery(0, false), RangeError);
  assert.throws(() => activityQuery(2 ** 31, false), RangeError);
});

test("a verified row, no row, and every kind of deviation as an alarm", () => {
  assert.deepEqual(readActivityAnswer(42, set([[...check, "42", "client backend", "alice", "postgres"]])), { kind: "row", row: { backendType: "client backend", role: "alice", database: "postgres" } });
  assert.deepEqual(readActivityAnswer(42, set([[...check, null, null, null, null]])), { kind: "none" });
  assert.equal(readActivityAnswer(42, set([])).kind, "alarm", "a built-in row missing");
  const sqlFn = [...check];
  sqlFn[3] = "14"; // prolang sql
  assert.match((readActivityAnswer(42, set([[...sqlFn, "42", "client backend", "a", "b"]])) as { why: string }).why, /p\.prolang is "14", built-in "12"/);
  const op = [...check];
  op[7] = "public.myeq";
  assert.equal(readActivityAnswer(42, set([[...op, "42", "client backend", "a", "b"]])).kind, "alarm");
  assert.equal(readActivityAnswer(42, set([[...check, "43", "client backend", "a", "b"]])).kind, "alarm", "a row for another pid");
  assert.equal(readActivityAnswer(42, set([[...check, "42", "client backend", "a", "b"], [...check, "42", "client backend", "a", "b"]])).kind, "alarm", "two rows");
  assert.equal(readActivityAnswer(42, [...set([]), ...set([])]).kind, "alarm", "two results");
});
