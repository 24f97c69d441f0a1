// contrib/docker/Dockerfile's build stage, run without Docker as its RUN line says: the files the
// stage COPYs (and nothing else of the checkout) compile with the package's prepare script, pack,
// and install globally with the runtime dependencies only; the installed command then works.
// npm ci's download is the one step left out: node_modules is the checkout's (CI ran npm ci).

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { repoPath } from "./support/paths.js";

const DOCKERFILE = repoPath("contrib/docker/Dockerfile");

/** The build stage's COPY sources and destinations, in order (the lines before the second FROM). */
function buildStageCopies(text: string): Array<{ sources: string[]; dest: string }> {
  const stage = text.replace(/\\\n/g, " ").split(/^FROM /m)[1]!;
  return [...stage.matchAll(/^COPY (?!--)(.*)$/gm)].map((m) => {
    const words = m[1]!.trim().split(/\s+/);
    return { sources: words.slice(0, -1), dest: words.at(-1)! };
  });
}

test("the Dockerfile's build stage compiles, packs and installs from the files it copies, and the installed pg_seccomp runs", { timeout: 600_000 }, () => {
  const text = readFileSync(DOCKERFILE, "utf8");
  const copies = buildStageCopies(text);
  assert.ok(copies.length >= 5, "the build stage copies the sources");
  assert.match(text, /RUN npm ci --no-audit --no-fund \\\n && npm pack --silent \\\n && npm install --global --prefix \/opt\/pg_seccomp --omit=dev --no-audit --no-fund \.\/pg_seccomp-\*\.tgz/, "the steps this test runs");
  const ctx = mkdtempSync(join(tmpdir(), "pg_seccomp-docker-build-"));
  try {
    for (const c of copies) {
      for (const src of c.sources) {
        const dest = c.dest.endsWith("/") ? join(ctx, c.dest, src.split("/").at(-1)!) : join(ctx, c.dest);
        cpSync(repoPath(src), dest, { recursive: true });
      }
    }
    assert.ok(!existsSync(join(ctx, "test")), "the stage has no tests (the build must not need them)");
    symlinkSync(repoPath("node_modules"), join(ctx, "node_modules"));
    const npm = (...args: string[]) => {
      const r = spawnSync("npm", args, { cwd: ctx, encoding: "utf8", timeout: 540_000 });
      assert.equal(r.status, 0, `npm ${args.join(" ")}:\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    npm("run", "prepare"); // what npm ci runs after installing
    npm("pack", "--silent");
    const tgz = readdirSync(ctx).find((f) => /^pg_seccomp-.*\.tgz$/.test(f));
    assert.ok(tgz, "npm pack wrote the tarball");
    const prefix = join(ctx, "opt");
    npm("install", "--global", "--prefix", prefix, "--omit=dev", "--no-audit", "--no-fund", "--prefer-offline", `./${tgz}`);
    const pkg = join(prefix, "lib/node_modules/pg_seccomp");
    // What the image's later lines use from the package.
    for (const used of ["dist/src/cli/main.js", "profiles/postgresql-15-x86_64.conf", "docs/deploy.md", "docs/policy.md"]) assert.ok(existsSync(join(pkg, used)), used);
    assert.ok(!existsSync(join(pkg, "node_modules/typescript")), "no dev dependency installed");
    const cli = (...args: string[]) => spawnSync(process.execPath, [join(pkg, "dist/src/cli/main.js"), ...args], { encoding: "utf8" });
    const v = cli("--version");
    assert.equal(v.status, 0, v.stderr);
    const c = cli("check", join(pkg, "profiles/postgresql-15-x86_64.conf"));
    assert.equal(c.status, 0, c.stderr + c.stdout);
  } finally {
    rmSync(ctx, { recursive: true, force: true });
  }
});
