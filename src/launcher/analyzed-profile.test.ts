import { test } from "node:test";
import assert from "node:assert/strict";
import { parsePreloadList } from "./analyzed-profile.js";

test("shared_preload_libraries: plain module names are analyzed; paths and odd entries are skipped, printable only", () => {
  assert.deepEqual(parsePreloadList("pg_stat_statements, auto_explain\n"), { modules: ["pg_stat_statements", "auto_explain"], skipped: [] });
  assert.deepEqual(parsePreloadList('"$libdir/pg_cron", timescaledb-2.14.so'), { modules: ["pg_cron", "timescaledb-2.14"], skipped: [] });
  assert.deepEqual(parsePreloadList(""), { modules: [], skipped: [] });
  const odd = parsePreloadList("/opt/x/evil.so, ../up, a\x1b[2Jb");
  assert.deepEqual(odd.modules, []);
  assert.deepEqual(odd.skipped, ["/opt/x/evil.so", "../up", "a?[2Jb"]);
});
