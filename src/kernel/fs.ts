// The *at() file calls Node does not offer: open, mkdir, unlink and rename relative to a
// directory descriptor. The launcher (root) uses them to act inside directories the server's
// user can write without ever resolving a path again (host/safe-fs.ts). Node's own fs
// calls work on the descriptors these return (fstat, read, write, fchown, close).

import { KernelError } from "./errors.js";
import { lastErrno, libcFunction, setErrno } from "./libc.js";

/** openat's "relative to the current directory". */
export const AT_FDCWD = -100;
export const AT_REMOVEDIR = 0x200;
/** Same value on x86_64 and aarch64; node:fs does not export it. */
export const O_CLOEXEC = 0o2000000;

// Open flags: use node:fs constants (O_NOFOLLOW, O_DIRECTORY, ... are the platform's values).

function fail(call: string, name: string): never {
  throw new KernelError(`${call}(${JSON.stringify(name)})`, lastErrno());
}

function checkName(name: string): void {
  // koffi passes a JS string as a NUL-terminated C string: a NUL inside would cut it short.
  if (name.includes("\0")) throw new KernelError(`path ${JSON.stringify(name)}`, 22 /* EINVAL */);
}

/**
 * openat(2); returns the new descriptor, always close-on-exec (the launcher spawns the server:
 * a descriptor it inherited would hand it a root-opened file). `mode` matters only with O_CREAT.
 */
export function openat(dirfd: number, name: string, flags: number, mode = 0): number {
  checkName(name);
  const f = libcFunction("openat", "int openat(int dirfd, const char *path, int flags, ...)");
  setErrno(0);
  const fd = f(dirfd, name, flags | O_CLOEXEC, "unsigned int", mode) as number;
  if (fd < 0) fail("openat", name);
  return fd;
}

/** mkdirat(2). */
export function mkdirat(dirfd: number, name: string, mode: number): void {
  checkName(name);
  const f = libcFunction("mkdirat", "int mkdirat(int dirfd, const char *path, unsigned int mode)");
  if ((f(dirfd, name, mode) as number) < 0) fail("mkdirat", name);
}

/** unlinkat(2): removes the name itself (a symbolic link is removed, never followed). */
export function unlinkat(dirfd: number, name: string, flags = 0): void {
  checkName(name);
  const f = libcFunction("unlinkat", "int unlinkat(int dirfd, const char *path, int flags)");
  if ((f(dirfd, name, flags) as number) < 0) fail("unlinkat", name);
}

/** renameat(2) between two names relative to directory descriptors. */
export function renameat(fromDirfd: number, from: string, toDirfd: number, to: string): void {
  checkName(from);
  checkName(to);
  const f = libcFunction("renameat", "int renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)");
  if ((f(fromDirfd, from, toDirfd, to) as number) < 0) fail("renameat", from);
}
