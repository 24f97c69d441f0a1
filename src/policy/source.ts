// Where policy text comes from. The parser reads through this interface so that it stays pure
// and testable with in-memory files; the CLI passes the Node file-system implementation.

import { readFileSync, realpathSync, readdirSync, statSync } from "node:fs";
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

export const fileSystemSource: PolicySource = {
  read: (path) => {
    if (statSync(path).isDirectory()) {
      throw Object.assign(new Error(`${path} is a directory`), { code: "EISDIR" });
    }
    return readFileSync(path, "utf8");
  },
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
