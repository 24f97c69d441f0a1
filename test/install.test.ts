// Installing like a tool (docs/deploy.md, "Install"): `npm pack`, then `npm install -g` of the
// tarball, here into a temporary prefix instead of /usr/local. The installed bin runs
// (--version from package.json, check on the bundled profile), koffi's prebuilt binary loads
// without any install script having run, and the package holds no tests or fixtures.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "./support/paths.js";

const ROOT = repoPath(".");
const VERSION = (JSON.parse(readFileSync(repoPath("package.json"), "utf8")) as { version: string }).version;
let dir = "";
let tarball = "";
let prefix = "";

const npm = (args: string[]) => spawnSync("npm", args, { cwd: ROOT, encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_config_update_notifier: "false" } });

before(() => {
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-install-"));
  // --ignore-scripts: dist/ is already built (npm test builds first); prepare would build again.
  const pack = npm(["pack", "--ignore-scripts", "--pack-destination", dir]);
  assert.equal(pack.status, 0, pack.stderr);
  tarball = join(dir, `pg_seccomp-${VERSION}.tgz`);
  assert.ok(existsSync(tarball), pack.stdout);
  prefix = join(dir, "prefix");
  // The documented command, with --prefix for the test: no install scripts run (koffi's
  // prebuilt binaries come in an optional dependency package).
  const inst = npm(["install", "-g", "--prefix", prefix, "--ignore-scripts", "--prefer-offline", "--no-audit", "--no-fund", tarball]);
  assert.equal(inst.status, 0, inst.stderr);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const BIN = () => join(prefix, "bin", "pg_seccomp");
const PKG = () => join(prefix, "lib", "node_modules", "pg_seccomp");

test("the installed bin is executable and prints package.json's version", () => {
  assert.ok(lstatSync(BIN()).isSymbolicLink());
  assert.ok((statSync(BIN()).mode & 0o111) !== 0, "executable");
  const r = spawnSync(BIN(), ["--version"], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), VERSION);
});

test("the installed bin checks the bundled profile, and koffi's binary loads with no install script run", () => {
  const profile = join(PKG(), "profiles", "postgresql-15-x86_64.conf");
  const r = spawnSync(BIN(), ["check", "--arch", "x86_64", profile], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /: ok (?:for \S+ )?\(/);
  const k = spawnSync(process.execPath, ["--input-type=module", "-e", `const k = await import(${JSON.stringify(join(PKG(), "dist/src/kernel/index.js"))}); console.log(typeof k.seccompSupport().ok)`], { encoding: "utf8" });
  assert.equal(k.status, 0, k.stderr);
  assert.equal(k.stdout.trim(), "boolean");
});

test("the package ships the wrapper and units, and no tests or fixtures", () => {
  for (const f of ["contrib/pg_ctl/postgres-seccomp", "contrib/systemd/postgresql-seccomp@.service", "dist/src/cli/main.js", "package.json"]) {
    assert.ok(existsSync(join(PKG(), f)), f);
  }
  assert.ok((statSync(join(PKG(), "contrib/pg_ctl/postgres-seccomp")).mode & 0o111) !== 0, "the wrapper stays executable");
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(d, e.name)) : [join(d, e.name)]));
  const files = walk(PKG()).filter((f) => !f.includes("/node_modules/")).map((f) => f.slice(PKG().length + 1));
  const tests = files.filter((f) => /\.test\.js|(^|\/)test\/|fixtures/.test(f));
  assert.deepEqual(tests, []);
  const dry = npm(["pack", "--dry-run", "--json", "--ignore-scripts"]);
  assert.equal(dry.status, 0, dry.stderr);
  const listed = (JSON.parse(dry.stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
  assert.deepEqual(listed.filter((f) => /\.test\.js|(^|\/)test\/|fixtures/.test(f)), []);
});
