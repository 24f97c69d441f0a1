// Who a backend authenticated as, from its own private memory (docs/design.md, "Classification",
// the row cross-check).
//
// The server's status row (pg_stat_get_activity's usesysid and datid), which classification
// reads, lives in shared memory that every server process maps read-write: code in one backend
// can rewrite another's row before that one is classified (test/attacks/row-forge.test.ts). A
// backend's private memory cannot be written by another server process (every one of them is
// non-dumpable: no /proc/PID/mem, no ptrace, no process_vm_writev), and before a backend is
// classified it has run only the server's own code (the exec gate). So the startup packet's
// user and database names the backend keeps in its `Port` (`MyProcPort->user_name`,
// `->database_name`, private: the postmaster's allocation, copied at fork) are read with
// the launcher's privileges while the call that asked for the classification is held, and must
// name what the row names.

import { closeSync, constants, fstatSync, openSync, readFileSync, realpathSync } from "node:fs";
import { readProcessMemory } from "./proc.js";

/**
 * Offsets of `char *database_name` and `char *user_name` in PostgreSQL's `struct Port`
 * (src/include/libpq/libpq-be.h) on LP64 (x86_64, aarch64), per major: the struct gained and
 * lost fields before them (17 dropped `canAcceptConnections`; 18 added the client socket's
 * fields). Measured on the builds the tests run (Debian's 15, the embedded 14, 16, 17, 18) by
 * reading live backends, and checked on every major by test/backend-identity.test.ts.
 */
export const PORT_NAME_OFFSETS: Readonly<Record<number, { database: number; user: number }>> = {
  14: { database: 328, user: 336 },
  15: { database: 328, user: 336 },
  16: { database: 328, user: 336 },
  17: { database: 320, user: 328 },
  18: { database: 384, user: 392 },
};

/**
 * PostgreSQL's `enum BackendType` (src/include/miscadmin.h) per major, in value order, each
 * named as pg_stat_activity's backend_type names it ("background worker" for B_BG_WORKER, whose
 * row shows the worker's own type: "parallel worker", "logical replication launcher", ...). The
 * values of the kinds a running server has (client backend, autovacuum launcher, background
 * worker, background writer, checkpointer, walwriter, archiver, 14's stats collector, 18's io
 * worker) were read from live processes of each major (`MyBackendType`); the rest follow the
 * header's order.
 */
export const BACKEND_TYPES: Readonly<Record<number, readonly string[]>> = {
  14: ["invalid", "autovacuum launcher", "autovacuum worker", "client backend", "background worker", "background writer", "checkpointer", "startup", "walreceiver", "walsender", "walwriter", "archiver", "stats collector", "logger"],
  15: ["invalid", "autovacuum launcher", "autovacuum worker", "client backend", "background worker", "background writer", "checkpointer", "startup", "walreceiver", "walsender", "walwriter", "archiver", "logger"],
  16: ["invalid", "archiver", "autovacuum launcher", "autovacuum worker", "client backend", "background worker", "background writer", "checkpointer", "logger", "standalone backend", "startup", "walreceiver", "walsender", "walwriter"],
  17: ["invalid", "client backend", "autovacuum launcher", "autovacuum worker", "background worker", "walsender", "slotsync worker", "standalone backend", "archiver", "background writer", "checkpointer", "startup", "walreceiver", "walsummarizer", "walwriter", "logger"],
  18: ["invalid", "client backend", "dead-end client backend", "autovacuum launcher", "autovacuum worker", "background worker", "walsender", "slotsync worker", "standalone backend", "archiver", "background writer", "checkpointer", "io worker", "startup", "walreceiver", "walsummarizer", "walwriter", "logger"],
};

/** The backend type process `pid` keeps in its own memory (`MyBackendType` at `address`), named as BACKEND_TYPES names it; undefined when unreadable or out of range. */
export function readOwnBackendType(pid: number, address: bigint, types: readonly string[]): string | undefined {
  const b = readProcessMemory(pid, address, 4);
  if (!b || b.length !== 4) return undefined;
  return types[b.readInt32LE(0)];
}

/** NAMEDATALEN: role and database names are shorter (63 bytes and a NUL). */
const NAME_MAX = 64;

export interface StartupNames {
  /** The startup packet's user (the role it logged in as); null when the pointer is NULL. */
  user: string | null;
  /** The database; "" or null for a physical replication connection. */
  database: string | null;
  /**
   * Whether its startup packet asked for replication (`am_walsender`, set from the packet's
   * `replication` option before authentication): a walsender, else a client backend. The
   * kernel's facts cannot tell the two apart, and the row's type is as writable as its role.
   */
  walsender: boolean;
}

/** A file as /proc/PID/maps names it: device (major, minor) and inode. */
export interface MappedFile {
  major: number;
  minor: number;
  ino: bigint;
}

/** Major and minor of a Linux dev_t (glibc's gnu_dev_major/minor encoding). */
export function devParts(dev: bigint): { major: number; minor: number } {
  return {
    major: Number(((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn)),
    minor: Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn)),
  };
}

/**
 * Does a /proc/PID/maps text map `file` at file offset 0 at address `start`? Matched by device
 * and inode, not by path: a postgres replaced while the server runs (a package upgrade) shows as
 * "PATH (deleted)", and its running children still have the old file's code and data.
 */
export function mapsFileAt(maps: string, file: MappedFile, start: bigint): boolean {
  for (const line of maps.split("\n")) {
    // start-end perms offset major:minor inode path
    const m = /^([0-9a-f]+)-[0-9a-f]+ \S+ ([0-9a-f]+) ([0-9a-f]+):([0-9a-f]+) (\d+)/.exec(line);
    if (!m || BigInt(`0x${m[1]}`) !== start || BigInt(`0x${m[2]}`) !== 0n) continue;
    return Number.parseInt(m[3]!, 16) === file.major && Number.parseInt(m[4]!, 16) === file.minor && BigInt(m[5]!) === file.ino;
  }
  return false;
}

/** AT_ENTRY (elf.h): the program's entry point as the kernel loaded it. */
const AT_ENTRY = 9n;

/** AT_ENTRY's value in a 64-bit /proc/PID/auxv (pairs of type and value, up to AT_NULL), or undefined. */
export function entryInAuxv(auxv: Buffer): bigint | undefined {
  for (let o = 0; o + 16 <= auxv.length; o += 16) {
    const type = auxv.readBigUInt64LE(o);
    if (type === 0n) return undefined;
    if (type === AT_ENTRY) return auxv.readBigUInt64LE(o + 8);
  }
  return undefined;
}

/**
 * The load address of the position-independent executable `file` in process `pid`, whose ELF
 * entry point is `entry`: the kernel's AT_ENTRY for the process (/proc/PID/auxv) less `entry`,
 * where its maps must show `file` at offset 0. Not the first offset-0 mapping of the file in its
 * maps: the process's own code can map the file again, lower (a module in the postmaster's
 * shared_preload_libraries: attacks/postmaster-base.test.ts). auxv is the kernel's record of the
 * exec; a process changes it only by prctl(PR_SET_MM_AUXV), which needs CAP_SYS_RESOURCE (the
 * server has no capability). Children of the postmaster are forks (no exec): they share its
 * address. Undefined when it cannot be read or the file is not mapped there.
 */
export function executableBase(pid: number, file: MappedFile, entry: bigint): bigint | undefined {
  try {
    const loaded = entryInAuxv(readFileSync(`/proc/${pid}/auxv`));
    if (loaded === undefined || loaded < entry) return undefined;
    const base = loaded - entry;
    return mapsFileAt(readFileSync(`/proc/${pid}/maps`, "utf8"), file, base) ? base : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The postgres executable at `path` (root's input: the command line run was given, never a path
 * the server names), read whole through one descriptor, with the device and inode of the file
 * read: the file the server's processes map, found in their maps by those even after an upgrade
 * renamed another file over the path. Throws when it cannot be read.
 */
export function readExecutable(path: string): { bytes: Buffer; file: MappedFile; real: string } {
  const real = realpathSync(path);
  const fd = openSync(real, constants.O_RDONLY | constants.O_NOCTTY | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile()) throw new Error("not a regular file");
    return { bytes: readFileSync(fd), file: { ...devParts(st.dev), ino: st.ino }, real };
  } finally {
    closeSync(fd);
  }
}

function readPointer(pid: number, addr: bigint): bigint | undefined {
  const b = readProcessMemory(pid, addr, 8);
  return b && b.length === 8 ? b.readBigUInt64LE(0) : undefined;
}

/** Decodes a name's bytes as the server's encoding does for the monitor's UTF8 session; undefined: cannot be decoded. */
export type NameDecoder = (bytes: Buffer) => string | undefined;

/**
 * WHATWG labels of PostgreSQL server encodings whose decoding here is the server's conversion to
 * UTF8 (TextDecoder, fatal). LATIN1 is not among them (the WHATWG "latin1" label is
 * windows-1252): it is ISO 8859-1 itself, as Buffer's latin1. WIN1252 is left out: Node 20's
 * "windows-1252" decoder is ISO 8859-1 (0x80 gives U+0080, not "€"), so it compares ASCII names only.
 */
const WHATWG_LABELS: Readonly<Record<string, string>> = {
  LATIN2: "iso-8859-2", LATIN3: "iso-8859-3", LATIN4: "iso-8859-4", LATIN6: "iso-8859-10", LATIN7: "iso-8859-13",
  LATIN8: "iso-8859-14", LATIN9: "iso-8859-15", LATIN10: "iso-8859-16", ISO_8859_5: "iso-8859-5", ISO_8859_6: "iso-8859-6",
  ISO_8859_7: "iso-8859-7", ISO_8859_8: "iso-8859-8", WIN866: "ibm866", WIN874: "windows-874", WIN1250: "windows-1250",
  WIN1251: "windows-1251", WIN1253: "windows-1253", WIN1254: "windows-1254", WIN1255: "windows-1255",
  WIN1256: "windows-1256", WIN1257: "windows-1257", WIN1258: "windows-1258", KOI8R: "koi8-r", KOI8U: "koi8-u",
  EUC_JP: "euc-jp", EUC_KR: "euc-kr",
};

/**
 * How to read the names a backend keeps as the server stores them (the startup packet's bytes,
 * which must equal pg_authid's and pg_database's to log in) so that they compare with the names
 * the monitor's session receives, converted from `serverEncoding` to UTF8. SQL_ASCII converts
 * nothing: the monitor's client reads the same bytes as UTF8, and so does this. An encoding not
 * known here decodes ASCII names only (the rest cannot be compared: undefined).
 */
export function nameDecoder(serverEncoding: string | undefined): NameDecoder {
  const enc = (serverEncoding ?? "").toUpperCase();
  if (enc === "SQL_ASCII") return (b) => b.toString("utf8");
  if (enc === "LATIN1") return (b) => b.toString("latin1");
  const label = enc === "UTF8" || enc === "UNICODE" ? "utf-8" : WHATWG_LABELS[enc];
  let d: TextDecoder | undefined;
  try {
    d = label ? new TextDecoder(label, { fatal: true }) : undefined;
  } catch {
    d = undefined; // this Node has no such decoder: ASCII only, below
  }
  if (d) {
    const fatal = d;
    return (b) => {
      try {
        return fatal.decode(b);
      } catch {
        return undefined;
      }
    };
  }
  return (b) => (b.every((c) => c < 0x80) ? b.toString("ascii") : undefined);
}

function readName(pid: number, addr: bigint, decode: NameDecoder): string | null | undefined {
  if (addr === 0n) return null;
  const b = readProcessMemory(pid, addr, NAME_MAX);
  if (!b) return undefined;
  const end = b.indexOf(0);
  return end < 0 ? undefined : decode(b.subarray(0, end));
}

/**
 * The user and database names in process `pid`'s Port, and whether it is a walsender:
 * `addresses` are where the globals `MyProcPort` and `am_walsender` (a C bool) are in it.
 * Undefined when anything cannot be read or is not a name (a process that is not a client
 * backend has no Port: MyProcPort is NULL).
 */
export function readStartupNames(pid: number, addresses: { myProcPort: bigint; amWalsender: bigint }, offsets: { database: number; user: number }, decode: NameDecoder = nameDecoder("UTF8")): StartupNames | undefined {
  const myProcPortAddress = addresses.myProcPort;
  const port = readPointer(pid, myProcPortAddress);
  if (port === undefined || port === 0n) return undefined;
  const userPtr = readPointer(pid, port + BigInt(offsets.user));
  const dbPtr = readPointer(pid, port + BigInt(offsets.database));
  if (userPtr === undefined || dbPtr === undefined) return undefined;
  const user = readName(pid, userPtr, decode);
  const database = readName(pid, dbPtr, decode);
  if (user === undefined || database === undefined) return undefined;
  const walsender = readProcessMemory(pid, addresses.amWalsender, 1);
  if (!walsender || walsender.length !== 1 || walsender[0]! > 1) return undefined;
  return { user, database, walsender: walsender[0] === 1 };
}
