// File access for the root launcher in places the server's user can influence (its data
// directory, the spool set_client_filter writes into, the directory of the violation log), and
// for every writer and reader of the run state (run-state.ts), whoever runs it.
// The rules, whichever call is used:
//   - no symbolic link is ever followed: directories are opened one component at a time with
//     O_NOFOLLOW|O_DIRECTORY from "/", and every later open, mkdir, unlink and rename is relative
//     to such a directory descriptor, by a single name;
//   - nothing but a regular file is opened for reading or writing: a name is first opened with
//     O_PATH (which never blocks, and has no side effects even on a FIFO or a device), checked
//     with fstat, and only then reopened for I/O through that very descriptor;
//   - reads are bounded (at most limit+1 bytes are read);
//   - error messages say what is wrong with a file, never what is in it.

import { randomBytes } from "node:crypto";
import { closeSync, fchmodSync, fstatSync, readdirSync, readSync, writeSync, constants as fsc, type Stats } from "node:fs";
import { isAbsolute, normalize } from "node:path";
import { AT_FDCWD, KernelError, mkdirat, openat, renameat, unlinkat } from "../kernel/index.js";

const O_PATH = 0o10000000; // same on x86_64 and aarch64; node:fs does not export it

/** A path the launcher refuses to act on, and why (never the file's content). */
export class UnsafePathError extends Error {
  override name = "UnsafePathError";
  constructor(readonly path: string, readonly problem: string) {
    super(`${path}: ${problem}`);
  }
}

/** Says what is wrong with a directory on the way (or undefined when it is fine). */
export type DirectoryCheck = (path: string, st: Stats, isLast: boolean) => string | undefined;

function codeOf(e: unknown): string | undefined {
  return e instanceof KernelError ? e.code : (e as NodeJS.ErrnoException).code;
}

/** A single name inside a directory: no slash, not "." or "..", no NUL. */
export function isPlainName(name: string): boolean {
  return name.length > 0 && name.length <= 255 && !name.includes("/") && !name.includes("\0") && name !== "." && name !== "..";
}

function plainName(name: string): string {
  if (!isPlainName(name)) throw new UnsafePathError(JSON.stringify(name), "is not a plain file name");
  return name;
}

/**
 * Opens an absolute directory path without following any symbolic link in any component
 * (a link anywhere fails the call). `check` sees every directory from "/" down and may refuse
 * one. The caller owns (and closes) the returned descriptor.
 */
export function openDirectoryNoFollow(path: string, check?: DirectoryCheck): number {
  if (!isAbsolute(path)) throw new UnsafePathError(path, "is not an absolute path");
  const parts = normalize(path).split("/").filter(Boolean);
  let fd = openat(AT_FDCWD, "/", fsc.O_RDONLY | fsc.O_DIRECTORY);
  let here = "/";
  try {
    const verify = (isLast: boolean) => {
      const why = check?.(here, fstatSync(fd), isLast);
      if (why) throw new UnsafePathError(here, why);
    };
    verify(parts.length === 0);
    for (let i = 0; i < parts.length; i++) {
      const name = parts[i]!;
      here = here === "/" ? `/${name}` : `${here}/${name}`;
      let next: number;
      try {
        next = openat(fd, name, fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
      } catch (e) {
        const code = codeOf(e);
        if (code === "ELOOP" || code === "ENOTDIR") throw new UnsafePathError(here, "is a symbolic link or not a directory");
        if (code === "ENOENT") throw new UnsafePathError(here, "does not exist");
        throw new UnsafePathError(here, `cannot be opened (${code ?? (e as Error).message})`);
      }
      closeSync(fd);
      fd = next;
      verify(i === parts.length - 1);
    }
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Opens directory `name` inside `dirfd` (not following a link); undefined when it does not exist. */
export function openSubdirectory(dirfd: number, name: string): number | undefined {
  try {
    return openat(dirfd, plainName(name), fsc.O_RDONLY | fsc.O_DIRECTORY | fsc.O_NOFOLLOW | fsc.O_NONBLOCK);
  } catch (e) {
    const code = codeOf(e);
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP" || code === "ENOTDIR") throw new UnsafePathError(name, "is a symbolic link or not a directory");
    throw new UnsafePathError(name, `cannot be opened (${code ?? (e as Error).message})`);
  }
}

/** mkdirat; false when the name exists already (whatever it is). */
export function makeDirectoryAt(dirfd: number, name: string, mode: number): boolean {
  try {
    mkdirat(dirfd, plainName(name), mode);
    return true;
  } catch (e) {
    if (codeOf(e) === "EEXIST") return false;
    throw new UnsafePathError(name, `cannot be created (${codeOf(e) ?? (e as Error).message})`);
  }
}

export interface RegularFileRule {
  /** The file must be owned by this uid. */
  owner?: number;
  /** Refuse a file with more than one name (a hard link to something else). */
  singleLink?: boolean;
}

function checkRegular(name: string, st: Stats, rule: RegularFileRule): void {
  if (!st.isFile()) throw new UnsafePathError(name, "is not a regular file");
  if (rule.owner !== undefined && st.uid !== rule.owner) throw new UnsafePathError(name, `is owned by uid ${st.uid}, not uid ${rule.owner}`);
  if (rule.singleLink && st.nlink !== 1) throw new UnsafePathError(name, "has more than one name (a hard link)");
}

/**
 * Opens regular file `name` in `dirfd` for reading. The name is looked at through an O_PATH
 * descriptor first, so a FIFO, a device or a socket is never opened for I/O (no blocking, no
 * side effects); the reopen goes through /proc/self/fd, i.e. to the very inode just checked.
 */
export function openRegularFileAt(dirfd: number, name: string, rule: RegularFileRule = {}): number {
  let pathFd: number;
  try {
    pathFd = openat(dirfd, plainName(name), O_PATH | fsc.O_NOFOLLOW);
  } catch (e) {
    const code = codeOf(e);
    if (code === "ENOENT") throw new UnsafePathError(name, "does not exist");
    throw new UnsafePathError(name, `cannot be opened (${code ?? (e as Error).message})`);
  }
  try {
    const st = fstatSync(pathFd);
    if (st.isSymbolicLink()) throw new UnsafePathError(name, "is a symbolic link");
    checkRegular(name, st, rule);
    const fd = openat(AT_FDCWD, `/proc/self/fd/${pathFd}`, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
    const again = fstatSync(fd);
    if (again.ino !== st.ino || again.dev !== st.dev) {
      closeSync(fd);
      throw new UnsafePathError(name, "changed while it was opened");
    }
    return fd;
  } finally {
    closeSync(pathFd);
  }
}

/** Reads at most `maxBytes` from fd; refuses (without saying what it holds) anything longer. */
export function readBounded(fd: number, name: string, maxBytes: number): Buffer {
  const st = fstatSync(fd);
  if (st.size > maxBytes) throw new UnsafePathError(name, `is too large (over ${maxBytes} bytes)`);
  const buf = Buffer.alloc(maxBytes + 1);
  let got = 0;
  while (got < buf.length) {
    const n = readSync(fd, buf, got, buf.length - got, null);
    if (n <= 0) break;
    got += n;
  }
  if (got > maxBytes) throw new UnsafePathError(name, `is too large (over ${maxBytes} bytes)`);
  return buf.subarray(0, got);
}

/** A regular file's content, bounded: openRegularFileAt + readBounded. */
export function readRegularFileAt(dirfd: number, name: string, maxBytes: number, rule: RegularFileRule = {}): Buffer {
  const fd = openRegularFileAt(dirfd, name, rule);
  try {
    return readBounded(fd, name, maxBytes);
  } finally {
    closeSync(fd);
  }
}

/** Removes the name (a symbolic link itself, never its target); false when it was not there. */
export function removeNameAt(dirfd: number, name: string): boolean {
  try {
    unlinkat(dirfd, plainName(name));
    return true;
  } catch (e) {
    if (codeOf(e) === "ENOENT") return false;
    throw new UnsafePathError(name, `cannot be removed (${codeOf(e) ?? (e as Error).message})`);
  }
}

/**
 * Opens (creating with `mode` if needed) regular file `name` in `dirfd` for appending. Never
 * follows a link (O_NOFOLLOW), never blocks (O_NONBLOCK), and refuses anything but a regular
 * file owned by `rule.owner`; `exclusive` insists on a new file (O_EXCL).
 */
export function openAppendAt(dirfd: number, name: string, mode: number, rule: RegularFileRule & { exclusive?: boolean } = {}): number {
  const flags = fsc.O_WRONLY | fsc.O_APPEND | fsc.O_CREAT | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY | (rule.exclusive ? fsc.O_EXCL : 0);
  let fd: number;
  try {
    fd = openat(dirfd, plainName(name), flags, mode);
  } catch (e) {
    const code = codeOf(e);
    if (code === "ELOOP") throw new UnsafePathError(name, "is a symbolic link");
    if (code === "EEXIST") throw new UnsafePathError(name, "exists already");
    throw new UnsafePathError(name, `cannot be opened (${code ?? (e as Error).message})`);
  }
  try {
    checkRegular(name, fstatSync(fd), rule);
    return fd;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** renameat within one directory descriptor. */
export function renameWithin(dirfd: number, from: string, to: string): void {
  try {
    renameat(dirfd, plainName(from), dirfd, plainName(to));
  } catch (e) {
    throw new UnsafePathError(from, `cannot be renamed (${codeOf(e) ?? (e as Error).message})`);
  }
}

/**
 * Writes `body` as regular file `name` in `dirfd`, whole or not at all: a temporary file with a
 * random name is created there with O_CREAT|O_EXCL|O_NOFOLLOW (never an existing name, never
 * through a link), given exactly `mode`, written, and renamed over `name` within the descriptor.
 */
export function writeFileAtomicallyAt(dirfd: number, name: string, body: string | Buffer, mode: number): void {
  plainName(name);
  const tmp = `.${name.slice(0, 200)}.${randomBytes(8).toString("hex")}.tmp`;
  let fd: number;
  try {
    fd = openat(dirfd, tmp, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW | fsc.O_NONBLOCK | fsc.O_NOCTTY, mode);
  } catch (e) {
    throw new UnsafePathError(name, `cannot be written (${codeOf(e) ?? (e as Error).message})`);
  }
  try {
    try {
      fchmodSync(fd, mode); // the umask does not choose who reads it
      const bytes = typeof body === "string" ? Buffer.from(body) : body;
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off, bytes.length - off);
    } finally {
      closeSync(fd);
    }
    renameWithin(dirfd, tmp, name);
  } catch (e) {
    try {
      unlinkat(dirfd, tmp);
    } catch {
      /* gone already */
    }
    throw e instanceof UnsafePathError ? e : new UnsafePathError(name, `cannot be written (${codeOf(e) ?? (e as Error).message})`);
  }
}

/** The names in the directory behind `dirfd` (the very directory that was opened and checked). */
export function namesIn(dirfd: number): string[] {
  return readdirSync(`/proc/self/fd/${dirfd}`);
}
