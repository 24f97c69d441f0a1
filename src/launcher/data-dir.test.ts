import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { confSetting, dataDirForLookup, findDebianCluster, majorOf, type DebianCluster } from "./data-dir.js";

test("confSetting reads one setting as PostgreSQL would: quotes, '' and \\' escapes, comments, the last one wins", () => {
  const text = [
    "#data_directory = '/nope'",
    "data_directory = '/var/lib/postgresql/15/main'\t\t# use data in another directory",
    "port = 5433 # comment",
    "Data_Directory='/srv/it''s'",
    "other = 'x'",
  ].join("\n");
  assert.equal(confSetting(text, "data_directory"), "/srv/it's");
  assert.equal(confSetting(text, "port"), "5433");
  assert.equal(confSetting(text, "missing"), undefined);
  assert.equal(confSetting("data_directory '/a\\'b'", "data_directory"), "/a'b");
});

test("majorOf: PG_VERSION of a data directory, else /etc/postgresql/MAJOR/NAME; dataDirForLookup follows data_directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-datadir-"));
  try {
    const data = join(dir, "data");
    const conf = join(dir, "conf");
    mkdirSync(data);
    mkdirSync(conf);
    writeFileSync(join(data, "PG_VERSION"), "16\n");
    writeFileSync(join(conf, "postgresql.conf"), `data_directory = '${data}'\n`);
    assert.equal(majorOf(data), 16);
    assert.equal(majorOf(conf), undefined);
    assert.equal(majorOf("/etc/postgresql/15/main"), 15);
    assert.equal(dataDirForLookup(conf), data);
    assert.equal(dataDirForLookup(data), data);
    assert.equal(dataDirForLookup(join(dir, "nothing")), join(dir, "nothing"));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("findDebianCluster takes 15/main and 15-main, refuses other shapes, and names the clusters there are", () => {
  const list: DebianCluster[] = [{ version: "15", name: "main", configDir: "/etc/postgresql/15/main", dataDir: "/srv/pg15" }];
  assert.equal(findDebianCluster("15/main", () => list).dataDir, "/srv/pg15");
  assert.equal(findDebianCluster("15-main", () => list).dataDir, "/srv/pg15");
  assert.throws(() => findDebianCluster("15/other", () => list), /no such cluster \(there are: 15\/main\)/);
  assert.throws(() => findDebianCluster("main", () => list), /give VERSION\/NAME/);
  assert.throws(() => findDebianCluster("15/../x", () => list), /give VERSION\/NAME/);
});
