import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { confSetting, dataDirForLookup, findDebianCluster, majorOf, readServerFile, type DebianCluster } from "./data-dir.js";

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

test("readServerFile: a link, a FIFO or a device is not read; a regular file is, up to the limit", () => {
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-serverfile-"));
  writeFileSync(join(dir, "postmaster.pid"), "123\n/data\n");
  assert.equal(readServerFile(join(dir, "postmaster.pid"), 4096), "123\n/data\n");
  assert.equal(readServerFile(join(dir, "postmaster.pid"), 3), "123");
  symlinkSync("/dev/zero", join(dir, "zero"));
  assert.equal(readServerFile(join(dir, "zero"), 4096), undefined, "a link is not followed");
  assert.equal(readServerFile("/dev/zero", 4096), undefined, "a device is not read");
  execFileSync("mkfifo", [join(dir, "fifo")]);
  assert.equal(readServerFile(join(dir, "fifo"), 4096), undefined, "a FIFO neither blocks nor is read");
});
