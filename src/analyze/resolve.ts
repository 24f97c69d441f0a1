// Which files a postgres binary loads: DT_NEEDED resolved as glibc's dynamic loader does, and the
// server's pkglibdir for extension modules. Reads files (node:fs) only; never runs anything.
//
// Loader order (ld.so(8)): a name containing "/" is a path; else DT_RPATH of the requesting
// object and of the executable (only when the requester has no DT_RUNPATH), LD_LIBRARY_PATH
// (not used here: the server's environment is the launcher's, which does not set it),
// DT_RUNPATH of the requester, /etc/ld.so.cache, then the standard directories. $ORIGIN (and
// ${ORIGIN}) expand to the directory of the requesting object; $LIB to lib64/lib; $PLATFORM is
// left unexpanded (a path with it is skipped). A candidate of the wrong machine is skipped, as
// the loader does.

import { existsSync, openSync, readSync, closeSync, readFileSync, realpathSync, statSync } from "node:fs";
import { dirname, join, resolve as resolvePath, basename } from "node:path";
import type { Arch } from "../syscalls/index.js";
import { elfHeaderArch } from "./elf.js";
import { parseLdCache, type LdCacheEntry } from "./ldcache.js";

export const STANDARD_DIRS: Readonly<Record<Arch, readonly string[]>> = {
  x86_64: ["/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"],
  aarch64: ["/lib/aarch64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/lib64", "/usr/lib64", "/lib", "/usr/lib"],
};

export interface LoaderEnv {
  readonly arch: Arch;
  /**
   * A directory that stands for "/" when looking up libraries: the target system's root, for a
   * binary of another arch (Debian's cross libc: /usr/aarch64-linux-gnu holds lib/libc.so.6).
   * Absolute DT_RPATH/DT_RUNPATH entries, the ld.so.cache (<sysroot>/etc/ld.so.cache) and the
   * standard directories are taken inside it; $ORIGIN entries stay relative to the requester.
   */
  readonly sysroot?: string;
  /** ld.so.cache entries (any arch; filtered by `arch` here). */
  readonly cache: readonly LdCacheEntry[];
  readonly standardDirs: readonly string[];
  /** Test hook: does `path` exist as an ELF of `arch`? Defaults to reading the file's header. */
  readonly isElfOf?: (path: string, arch: Arch) => boolean;
}

export interface LoadedObject {
  /** The DT_NEEDED name (or the path given for the executable and modules). */
  readonly name: string;
  /** The path found (not resolved through symlinks, as the loader reports it). */
  readonly path: string;
  /** Who needed it first: the name of the requesting object. */
  readonly neededBy?: string;
  /** How it was found: "rpath", "runpath", "ld.so.cache", "standard", "path". */
  readonly how: string;
}

export interface MissingObject {
  readonly name: string;
  readonly neededBy: string;
  readonly searched: string[];
}

export function loadLdCache(path = "/etc/ld.so.cache"): { entries: LdCacheEntry[]; note?: string } {
  try {
    return { entries: parseLdCache(readFileSync(path)) };
  } catch (e) {
    return { entries: [], note: `${path}: ${(e as Error).message}; using the standard directories only` };
  }
}

export function defaultLoaderEnv(arch: Arch, sysroot?: string): LoaderEnv & { note?: string } {
  if (sysroot === undefined || sysroot === "/") {
    const c = loadLdCache();
    return { arch, cache: c.entries, standardDirs: STANDARD_DIRS[arch], ...(c.note ? { note: c.note } : {}) };
  }
  const root = resolvePath(sysroot);
  const cachePath = join(root, "etc", "ld.so.cache");
  // A cross sysroot usually has no ld.so.cache: the standard directories are the whole search.
  const c = existsSync(cachePath) ? loadLdCache(cachePath) : { entries: [] as LdCacheEntry[] };
  return {
    arch,
    sysroot: root,
    cache: c.entries.map((e) => ({ ...e, path: join(root, e.path) })),
    standardDirs: STANDARD_DIRS[arch].map((d) => join(root, d)),
    note: `libraries are looked up in ${root} (sysroot) for this ${arch} binary` + ("note" in c && c.note ? `; ${c.note}` : ""),
  };
}

/** Debian's cross-toolchain root for a foreign arch (/usr/<triplet>), when it is installed. */
export const CROSS_SYSROOTS: Readonly<Record<Arch, string>> = { x86_64: "/usr/x86_64-linux-gnu", aarch64: "/usr/aarch64-linux-gnu" };

/** The sysroot to use by default for a binary of `arch` on a host of `host`: none for the host's own arch. */
export function defaultSysroot(arch: Arch, host: Arch | undefined): string | undefined {
  if (arch === host) return undefined;
  const d = CROSS_SYSROOTS[arch];
  return existsSync(join(d, "lib")) ? d : undefined;
}

export function isElfOfArch(path: string, arch: Arch): boolean {
  let fd: number | undefined;
  try {
    if (!statSync(path).isFile()) return false;
    fd = openSync(path, "r");
    const head = Buffer.alloc(64);
    if (readSync(fd, head, 0, 64, 0) < 64) return false;
    const h = elfHeaderArch(head);
    return "arch" in h && h.arch === arch;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Expands $ORIGIN/${ORIGIN} and $LIB; undefined for dynamic string tokens we cannot know ($PLATFORM). */
export function expandDst(entry: string, origin: string): string | undefined {
  // A relative origin (`--postgres bin/postgres`) is taken from the working directory, once.
  if (!origin.startsWith("/")) origin = `${process.cwd().replace(/\/+$/, "")}/${origin}`;
  let s = entry.replace(/\$\{ORIGIN\}|\$ORIGIN(?![A-Za-z0-9_])/g, origin).replace(/\$\{LIB\}|\$LIB(?![A-Za-z0-9_])/g, "lib64");
  if (s.includes("$")) return undefined;
  if (!s.startsWith("/")) s = resolvePath(origin, s);
  return s;
}

export interface Requester {
  readonly name: string;
  readonly path: string;
  readonly rpath: readonly string[];
  readonly runpath: readonly string[];
}

/** One DT_NEEDED lookup, in the loader's order. `exe` supplies the executable's DT_RPATH. */
export function findNeeded(
  name: string,
  requester: Requester,
  exe: Requester,
  env: LoaderEnv,
): { path: string; how: string } | { searched: string[] } {
  const ok = env.isElfOf ?? isElfOfArch;
  const searched: string[] = [];
  if (name.includes("/")) {
    const p = resolvePath(dirname(requester.path), name);
    return ok(p, env.arch) ? { path: p, how: "path" } : { searched: [p] };
  }
  const tryDirs = (dirs: readonly string[], origin: string, how: string, inSysroot = true) => {
    for (const d of dirs) {
      // An absolute path written in the binary names the target system's directory.
      const dir = expandDst(inSysroot && env.sysroot && d.startsWith("/") ? join(env.sysroot, d) : d, origin);
      if (dir === undefined) continue;
      const p = `${dir.replace(/\/+$/, "")}/${name}`; // not normalized: ".." after a symlink is the kernel's business
      searched.push(p);
      if (ok(p, env.arch)) return { path: p, how };
    }
    return undefined;
  };
  if (requester.runpath.length === 0) {
    const r = tryDirs(requester.rpath, dirname(requester.path), "rpath") ?? (requester !== exe ? tryDirs(exe.rpath, dirname(exe.path), "rpath") : undefined);
    if (r) return r;
  } else {
    const r = tryDirs(requester.runpath, dirname(requester.path), "runpath");
    if (r) return r;
  }
  for (const e of env.cache) {
    if (e.name === name && e.arch === env.arch) {
      searched.push(`ld.so.cache: ${e.path}`);
      if (ok(e.path, env.arch)) return { path: e.path, how: "ld.so.cache" };
    }
  }
  return tryDirs(env.standardDirs, "/", "standard", false) ?? { searched };
}

/**
 * The pkglibdir of the server whose postgres binary is `postgres`: Debian's layout
 * (/usr/lib/postgresql/15/bin → /usr/lib/postgresql/15/lib), else <prefix>/lib/postgresql,
 * else <prefix>/lib (a build configured with a prefix that already names PostgreSQL).
 */
export function derivePkglibdir(postgres: string): string | undefined {
  const bin = dirname(resolvePath(postgres));
  const prefix = dirname(bin);
  const candidates = [join(prefix, "lib", "postgresql"), join(prefix, "lib")];
  // Debian: /usr/lib/postgresql/<major>/{bin,lib}; the modules sit directly in lib.
  if (basename(dirname(prefix)) === "postgresql") candidates.unshift(join(prefix, "lib"));
  for (const c of candidates) {
    if (existsSync(join(c, "plpgsql.so"))) return c;
  }
  return undefined;
}

/** An extension given as NAME is pkglibdir/NAME.so; a value with "/" is a path. */
export function resolveExtension(spec: string, pkglibdir: string | undefined): { path: string } | { error: string } {
  if (spec.includes("/")) return existsSync(spec) ? { path: resolvePath(spec) } : { error: `${spec}: no such file` };
  if (!/^[A-Za-z0-9_.-]+$/.test(spec)) return { error: `extension "${spec}": not a module name; give NAME (pkglibdir/NAME.so) or a path` };
  if (!pkglibdir) return { error: `extension "${spec}": the server's pkglibdir was not found next to its bin directory; give the module's path` };
  const p = join(pkglibdir, spec.endsWith(".so") ? spec : `${spec}.so`);
  return existsSync(p) ? { path: p } : { error: `extension "${spec}": ${p} does not exist` };
}

export function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}
