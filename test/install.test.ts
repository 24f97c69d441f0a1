// Installing like a tool (docs/deploy.md, "Install"): `npm pack`, then `npm install -g` of the
// tarball, here into a temporary prefix instead of /usr/local. The installed bin runs
// (--version from package.json, check on the bundled profile), koffi's prebuilt binary loads
// without any install script having run, and the package holds no tests or fixtures.
//
// The install commands are the docs' own (`test=install`: deploy.md's Install block, README's
// install line), read from the Markdown and run line by line with sh in the directory npm pack
// wrote the tarball to. Substituted for a test machine: npm's global prefix is a temporary one
// (npm_config_prefix in the environment, so `npm install -g` and `$(npm root -g)` use it, and its
// bin/ is first on PATH); /usr/local/lib/pg_seccomp and /etc/pg_seccomp are temporary
// directories; when not root, `-o root -g root` is left out.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { blocksTestedBy } from "./support/doc-blocks.js";
import { repoPath } from "./support/paths.js";

const ROOT = repoPath(".");
const VERSION = (JSON.parse(readFileSync(repoPath("package.json"), "utf8")) as { version: string }).version;
let dir = "";
let tarball = "";
let prefix = "";
let libDir = "";
let etcDir = "";
/** What the docs' `pg_seccomp --version` printed. */
const versions: string[] = [];

const npm = (args: string[]) => spawnSync("npm", args, { cwd: ROOT, encoding: "utf8", timeout: 300_000, env: { ...process.env, npm_config_update_notifier: "false" } });

before(() => {
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-install-"));
  // --ignore-scripts: dist/ is already built (npm test builds first); prepare would build again.
  const pack = npm(["pack", "--ignore-scripts", "--pack-destination", dir]);
  assert.equal(pack.status, 0, pack.stderr);
  tarball = join(dir, `pg_seccomp-${VERSION}.tgz`);
  assert.ok(existsSync(tarball), pack.stdout);
  prefix = join(dir, "prefix");
  libDir = join(dir, "usr-local-lib-pg_seccomp");
  etcDir = join(dir, "etc-pg_seccomp");
  const blocks = blocksTestedBy("install");
  assert.deepEqual(blocks.map((b) => b.file), ["README.md", "docs/deploy.md"]);
  const env = {
    ...process.env,
    PATH: `${join(prefix, "bin")}:${process.env.PATH ?? "/usr/bin:/bin"}`,
    npm_config_prefix: prefix,
    npm_config_update_notifier: "false",
    npm_config_prefer_offline: "true",
    npm_config_audit: "false",
    npm_config_fund: "false",
  };
  const root = process.getuid?.() === 0;
  for (const b of blocks) {
    for (const [i, written] of b.body.split("\n").entries()) {
      if (written.trim() === "") continue;
      // The tarball the docs name is the one npm pack makes of this version.
      for (const m of written.matchAll(/\.\/(pg_seccomp-\S+\.tgz)/g)) assert.equal(m[1], `pg_seccomp-${VERSION}.tgz`, `${b.file}:${b.line + 1 + i}`);
      let line = written.replaceAll("/usr/local/lib/pg_seccomp", libDir).replaceAll("/etc/pg_seccomp", etcDir);
      if (!root) line = line.replaceAll(" -o root -g root", "");
      const r = spawnSync("sh", ["-c", line], { cwd: dir, encoding: "utf8", timeout: 300_000, env });
      assert.equal(r.status, 0, `${b.file}:${b.line + 1 + i}: ${line}\n${r.stdout}${r.stderr}`);
      if (/pg_seccomp --version/.test(line)) versions.push(r.stdout.trim().split("\n").at(-1)!);
    }
  }
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

test("the docs' install commands ran: --version printed the package's version, the wrapper and the profile are where the docs put them", () => {
  assert.deepEqual(versions, [VERSION, VERSION], "README's and deploy.md's pg_seccomp --version");
  for (const d of [libDir, etcDir]) assert.equal(statSync(d).mode & 0o7777, 0o755, d);
  const wrapper = join(libDir, "postgres-seccomp");
  assert.equal(statSync(wrapper).mode & 0o7777, 0o755);
  assert.equal(readFileSync(wrapper, "utf8"), readFileSync(repoPath("contrib/pg_ctl/postgres-seccomp"), "utf8"));
  const policy = join(etcDir, "postgresql-15.conf");
  assert.equal(statSync(policy).mode & 0o7777, 0o644);
  assert.equal(readFileSync(policy, "utf8"), readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8"));
  if (process.getuid?.() === 0) for (const f of [libDir, etcDir, wrapper, policy]) assert.equal(statSync(f).uid, 0, f);
});

test("the installed bin checks the bundled profile, and koffi's binary loads with no install script run", () => {
  const profile = join(PKG(), "profiles", "postgresql-15-x86_64.conf");
  const r = spawnSync(BIN(), ["check", "--arch", "x86_64", profile], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /: ok\b/);
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
