// Where policy text comes from. The parser reads through this interface so that it stays pure
// and testable with in-memory files; the CLI passes the Node file-system implementation.

import { closeSync, fstatSync, openSync, readSync, realpathSync, readdirSync, statSync, constants as fsc } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";

export interface PolicySource {
  /** The file's text; throws an Error with a `code` (ENOENT, EACCES, EISDIR) when it can't. */
  read(path: string): string;
  /** A canonical name for loop detection. */
  canonical(path: string): string;
  /** Names of the regular files in a directory (for include_dir). */
  list(dir: string): string[];
  exists(path: string): boolean;
}

export function resolveIncluded(includingFile: string, target: string): string {
  return isAbsolute(target) ? target : resolve(dirname(includingFile), target);
}

/** A policy file is at most this large (the bundled profiles are about 20 kB; the list limits refuse far less than this). */
export const MAX_POLICY_FILE_BYTES = 32 * 1024 * 1024;

/**
 * A policy file's text: a regular file only (a link to /dev/zero, a FIFO or a device is refused,
 * not read until memory runs out or forever: opened without blocking, checked with fstat), at
 * most MAX_POLICY_FILE_BYTES. Links are followed: a policy may be installed as one.
 */
export function readPolicyFile(path: string, max = MAX_POLICY_FILE_BYTES): string {
  const fd = openSync(path, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw Object.assign(new Error(`${path} is a directory`), { code: "EISDIR" });
    if (!st.isFile()) throw Object.assign(new Error("it is not a regular file (a device, FIFO or socket)"), { code: "ENOTREG" });
    const chunk = Buffer.alloc(1 << 16);
    const parts: Buffer[] = [];
    let got = 0;
    for (let n; (n = readSync(fd, chunk, 0, chunk.length, null)) > 0; ) {
      got += n;
      if (got > max) throw Object.assign(new Error(`it is larger than ${max} bytes`), { code: "EFBIG" });
      parts.push(Buffer.from(chunk.subarray(0, n)));
    }
    return Buffer.concat(parts).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

export const fileSystemSource: PolicySource = {
  read: (path) => readPolicyFile(path),
  canonical: (path) => realpathSync(path),
  list: (dir) => readdirSync(dir, { withFileTypes: true }).filter((d) => d.isFile()).map((d) => d.name),
  exists: (path) => {
    try {
      statSync(path);
      return true;
    } catch {
      return false;
    }
  },
};

/** An in-memory source for tests and for policies given as text. */
export function memorySource(files: Record<string, string>): PolicySource {
  const norm = (p: string) => resolve(p);
  const table = new Map(Object.entries(files).map(([k, v]) => [norm(k), v]));
  return {
    read: (path) => {
      const text = table.get(norm(path));
      if (text === undefined) throw Object.assign(new Error(`no such file ${path}`), { code: "ENOENT" });
      return text;
    },
    canonical: norm,
    list: (dir) =>
      [...table.keys()].filter((k) => dirname(k) === norm(dir)).map((k) => k.slice(norm(dir).length + 1)),
    exists: (path) => table.has(norm(path)) || [...table.keys()].some((k) => dirname(k) === norm(path)),
  };
}
