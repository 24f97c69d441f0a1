// The server's own code that may be mapped executable without classifying the process first
// (docs/design.md, "The exec gate and the server's own modules").
//
// The exec gate classifies a process before new executable code enters it, because code that is
// not the server's could rewrite what classification reads (the process's shared-memory status).
// PL/pgSQL is the server's own: its handler (plpgsql.so, shipped with the server, root's) runs
// only SQL and its interpreter, which can no more rewrite that status than SQL can. It is also
// what nearly every connection that calls a function loads, so gating it made the classification
// (a monitor query and a ptrace injection, several milliseconds) a cost of every such connection.
//
// Identified by mount and inode, never by path: what the process maps is the file behind its
// descriptor, read from /proc/PID/fdinfo while its mmap call is held (the kernel's own record of
// the open file: never a call into the file's filesystem, which a FUSE mount could make wait
// forever), and the launcher records the module at start, through a route the server's user
// cannot change (host/permissions.ts), by the fdinfo of its own descriptor of it.

import { closeSync, constants, fstatSync, openSync, readFileSync, statSync, type BigIntStats } from "node:fs";
import { dirname, join } from "node:path";
import { checkRoute, fileProblem, Problems, type ServerIdentity } from "./permissions.js";

/**
 * An open file by its identity: the kernel's mount id and the inode number, as /proc/PID/fdinfo
 * shows them (decimal strings: they cross to the worker thread). A mount id names one mount, so a
 * bind mount or another mount namespace's copy of it is another identity (its module is then
 * classified, as any other: slower, never weaker).
 */
export interface FileIdentity {
  mnt: string;
  ino: string;
}

/** The mount id and inode of an fdinfo text ("pos:", "flags:", "mnt_id:", "ino:" lines); undefined without both. */
export function parseFdinfoIdentity(text: string): FileIdentity | undefined {
  const mnt = /^mnt_id:\s*(\d+)$/m.exec(text)?.[1];
  const ino = /^ino:\s*(\d+)$/m.exec(text)?.[1];
  return mnt !== undefined && ino !== undefined ? { mnt, ino } : undefined;
}

/** The server's own modules that run no code but the server's: PL/pgSQL's handler. */
export const SERVER_CODE_MODULES = ["plpgsql.so"] as const;

/**
 * Where a PostgreSQL installation keeps its modules relative to its bin directory: Debian's
 * /usr/lib/postgresql/15/{bin,lib}, and the upstream layout (PREFIX/bin, PREFIX/lib/postgresql)
 * of the embedded builds and of source installs.
 */
const PKGLIB_FROM_BIN = ["../lib", "../lib/postgresql"] as const;

/**
 * Each module taken, held open for the launcher's life (by identity): while a descriptor names
 * the inode it is not freed, so its inode number cannot be given to another file (an upgrade
 * renames a new plpgsql.so over the old one; once no process maps the old, the next file created
 * in its block group, one of the server's user's, would get its number).
 */
const held = new Map<string, { fd: number; id: FileIdentity }>();

export interface ServerCode {
  files: FileIdentity[];
  /** Why a candidate was not taken (a route the server's user could change, a file not root's). */
  refused: string[];
}

/**
 * The identities of SERVER_CODE_MODULES beside `postgresPath`, each only when it is a regular
 * file owned by root, not writable by group or others, reached through directories and links the
 * server's user cannot change: the inode recorded is then the module the installation shipped.
 */
export function findServerCode(postgresPath: string, server: ServerIdentity): ServerCode {
  const files: FileIdentity[] = [];
  const refused: string[] = [];
  const bin = dirname(postgresPath);
  for (const rel of PKGLIB_FROM_BIN) {
    for (const name of SERVER_CODE_MODULES) {
      const path = join(bin, rel, name);
      let st: BigIntStats;
      try {
        st = statSync(path, { bigint: true });
      } catch {
        continue; // not this layout
      }
      const problems = new Problems();
      const route = checkRoute(path, "file", server, problems);
      const why = problems.list.map((p) => `${p.path}: ${p.problem}`);
      if (route) {
        // The route's end, as checked (lstat of each component), is the file statted above when
        // both name the same inode; a rename between the two shows as a difference.
        const end = statSync(route.real, { bigint: true });
        if (end.dev !== st.dev || end.ino !== st.ino) why.push(`${path}: changed while it was checked`);
        if (!end.isFile()) why.push(`${path}: not a regular file`);
        if (end.uid !== 0n) why.push(`${path}: not owned by root`);
        const p = fileProblem({ uid: Number(end.uid), gid: Number(end.gid), mode: Number(end.mode) }, server);
        if (p) why.push(`${path}: ${p}`);
      }
      const id = why.length === 0 && route ? holds(route.real, st) : undefined;
      if (why.length === 0 && route && !id) why.push(`${path}: changed while it was checked, or this kernel's fdinfo shows no inode`);
      if (why.length > 0 || !id) refused.push(...why);
      else files.push(id);
    }
  }
  return { files, refused };
}

/**
 * Opens the checked module (its real path: no link at its end, never blocking) and keeps the
 * descriptor when it names the inode checked: its identity as fdinfo shows it, else undefined
 * (changed, or a kernel whose fdinfo has no inode line: the exception is then off).
 */
function holds(real: string, checked: BigIntStats): FileIdentity | undefined {
  const key = `${checked.dev}:${checked.ino}`;
  const had = held.get(key);
  if (had) return had.id;
  let fd: number;
  try {
    fd = openSync(real, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch {
    return undefined;
  }
  const st = fstatSync(fd, { bigint: true });
  const id = st.isFile() && st.dev === checked.dev && st.ino === checked.ino ? descriptorIdentity(process.pid, fd) : undefined;
  if (!id || id.ino !== st.ino.toString()) {
    closeSync(fd);
    return undefined;
  }
  held.set(key, { fd, id });
  return id;
}

/**
 * The identity of the file behind process `pid`'s descriptor `fd`, or undefined (closed, gone).
 * Read from fdinfo, which the kernel writes from the open file it holds: nothing here waits on
 * the file's filesystem (a stat through /proc/PID/fd/N would ask a FUSE server, which could
 * leave the worker waiting while every routed call waits behind it).
 */
export function descriptorIdentity(pid: number, fd: number): FileIdentity | undefined {
  try {
    return parseFdinfoIdentity(readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8"));
  } catch {
    return undefined;
  }
}
