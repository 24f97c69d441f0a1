// set_client_filter(default_action, allow_list, log_list, error_list, kill_list), the seed's
// function, without a C extension. The SQL function (src/sql/install.ts) writes the request to
// <data dir>/pg_seccomp/<backend pid>.json and then "knocks": it seeks a file to
// CLIENT_FILTER_KNOCK, an lseek the installed program hands to the supervisor. While that call
// waits, the launcher installs the requested filter *into the calling backend* (ptrace; see
// kernel/ptrace.ts) and only then lets the call return, so the function returns with the filter
// in force. The backend's pid comes from the kernel's notification, never from the request. A
// filter can only add restrictions, and once per session, as in the seed's extension.

import { closeSync, fchownSync, fstatSync, realpathSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { compilePolicy } from "../compile/compile.js";
import type { Insn } from "../bpf/insn.js";
import { ACTION_KINDS, parseAction } from "../policy/actions.js";
import { parseList } from "../policy/entries.js";
import { checkEntries, dropDefaultActionEntries, type FilterSpec, type Policy, type PolicyEntry } from "../policy/policy.js";
import { effectiveFilterRows, sessionVariants, type FilterRow } from "../render/effective-table.js";
import { removeStatePath, stateDirNames, writeStatePath, type LauncherTable } from "../host/run-state.js";
import type { Arch } from "../syscalls/index.js";
import type { ContextSpec } from "../policy/decision.js";
import { makeDirectoryAt, openDirectoryNoFollow, openSubdirectory, readRegularFileAt, removeNameAt, UnsafePathError } from "../host/safe-fs.js";
import { readStartTime } from "../host/proc.js";

export interface ClientFilterRequest {
  default: string | null;
  allow: string | null;
  log: string | null;
  error: string | null;
  kill: string | null;
}

/** The spool directory the SQL function writes requests into (owned by the server's user). */
export function clientFilterSpool(dataDir: string): string {
  return join(dataDir, "pg_seccomp");
}

/**
 * A refusal with what the SQL function raises: pgseccomp's messages, hints and SQLSTATEs where
 * pgseccomp has them ("Client filter may only be loaded once", "Default action not valid").
 */
export class ClientFilterRefusal extends Error {
  constructor(message: string, readonly sqlstate: string, readonly hint?: string, readonly detail?: string) {
    super(message);
  }
}

const DEFAULT_HINT = 'Must be "allow", "log", "error", or "kill".';

/**
 * The requested filter, with pgseccomp's meanings: NULL is the session's own list (or default),
 * '*' in a list is the global list for that action. What the session or '*' brings is
 * inherited: a syscall the request names explicitly is decided by the request's entry, so
 * `set_client_filter(NULL, NULL, NULL, 'execve', NULL)` narrows a session that may exec (the
 * lists are not merged flat). A filter can only add restrictions: the kernel stacks it.
 */
export function clientFilterSpec(policy: Policy, session: FilterSpec, req: ClientFilterRequest): FilterSpec {
  const loc = { file: "set_client_filter", line: 1, column: 1 };
  let defaultAction = session.defaultAction;
  if (req.default !== null) {
    const ok = policy.compat === "pgseccomp" ? ["allow", "log", "error", "kill"].includes(req.default) : true;
    try {
      if (!ok) throw new Error();
      defaultAction = parseAction(req.default, policy.errorErrno, loc);
    } catch {
      throw new ClientFilterRefusal("Default action not valid", "22023", DEFAULT_HINT);
    }
  }
  const entries: PolicyEntry[] = [];
  for (const kind of ACTION_KINDS) {
    // trap and terminate have no list in pgseccomp's set_client_filter(): the session's lists
    // stay (inside this filter, which the kernel runs, a terminate entry fails the call only).
    const given = kind === "trap" || kind === "terminate" ? null : req[kind as keyof ClientFilterRequest];
    if (given === null || given === undefined) {
      entries.push(...session.entries.filter((e) => e.action.kind === kind).map((e) => ({ ...e, inheritedFrom: e.inheritedFrom ?? e.loc })));
      continue;
    }
    let parsed;
    try {
      parsed = parseList(given, { file: `set_client_filter ${kind}_list`, line: 1, column: 1 });
    } catch (e) {
      throw new ClientFilterRefusal("failed to load client seccomp filter", "22023", undefined, describeRequestError(e));
    }
    for (const e of parsed) {
      if (e.kind === "inherit") {
        entries.push(...policy.global.entries.filter((g) => g.action.kind === kind).map((g) => ({ ...g, inheritedFrom: e.loc })));
        continue;
      }
      if (e.errno !== undefined && kind !== "error") {
        throw new ClientFilterRefusal("failed to load client seccomp filter", "22023", undefined, `"${e.name}" gives an errno in the ${kind} list`);
      }
      entries.push({ ...e, action: kind === "error" ? { kind: "error", errno: e.errno ?? policy.errorErrno } : { kind } });
    }
  }
  const spec: FilterSpec = { name: "client", defaultAction, entries };
  if (policy.compat === "pgseccomp") dropDefaultActionEntries(spec);
  try {
    checkEntries(spec);
  } catch (e) {
    throw new ClientFilterRefusal("failed to load client seccomp filter", "22023", undefined, describeRequestError(e));
  }
  return spec;
}

/** The client filter as a program of its own (the kernel stacks it on the backend's filters). */
export function clientFilterProgram(policy: Policy, arch: Arch, spec: FilterSpec): Insn[] {
  const alone: Policy = {
    ...policy, global: spec, session: spec, roles: new Map(), databases: new Map(), processes: new Map(), notes: [], files: [],
  };
  delete alone.hardening; // the backend already has the presets
  try {
    return compilePolicy(alone, arch, { context: "global" });
  } catch (e) {
    throw new ClientFilterRefusal("failed to load client seccomp filter", "22023", undefined, describeRequestError(e));
  }
}

export function launcherTable(policy: Policy, arch: Arch, postmasterPid: number, policyPath: string): LauncherTable {
  return {
    postmasterPid, enabled: policy.enabled, policyPath: resolve(policyPath), arch,
    variants: sessionVariants(policy).map((v) => ({
      role: v.role ?? null, database: v.database ?? null,
      rows: effectiveFilterRows(policy, arch, [{ context: "global" }, { context: "session", ...v }]),
    })),
  };
}

export function writeLauncherTable(path: string, table: LauncherTable): void {
  writeStatePath(path, JSON.stringify(table) + "\n");
}

export interface ClientFilterResult {
  status: "ok" | "error";
  sqlstate?: string;
  message?: string;
  hint?: string;
  detail?: string;
}

// The records below are written in the launcher's run-state directory (run-state.ts: its own,
// checked on every write, not writable by the server's user when that is not us), each as a new
// file renamed into place, so a reader never sees half and no name there can be a planted link.

export function writeClientResult(prefix: string, pid: number, start: string, r: ClientFilterResult): void {
  writeStatePath(`${prefix}${pid}-${start}.result.json`, JSON.stringify(r) + "\n");
}

export function writeClientRows(prefix: string, pid: number, start: string, rows: readonly FilterRow[]): void {
  writeStatePath(`${prefix}${pid}-${start}.json`, JSON.stringify(rows) + "\n");
  // Records of backends that are gone (pid free, or taken by a process started later).
  const base = basename(prefix);
  for (const n of stateDirNames(dirname(prefix))) {
    const m = n.startsWith(base) ? /^(\d+)-(\d+)(\.result)?\.json$/.exec(n.slice(base.length)) : null;
    if (!m) continue;
    let alive = false;
    try {
      alive = readStartTime(Number(m[1])) === m[2];
    } catch {
      /* gone */
    }
    if (!alive) removeStatePath(join(dirname(prefix), n));
  }
}

/** At most this many bytes in a request file; more is refused unread. */
export const MAX_REQUEST_BYTES = 4096;
/** At most this many characters in one of its lists. */
const MAX_FIELD_CHARS = 1024;
const REQUEST_KEYS = ["default", "allow", "log", "error", "kill"] as const;

/**
 * The spool directory, opened once when the server starts and kept open for the run: every
 * request is then read relative to this descriptor, so renaming or replacing the path later (the
 * server's user can, it owns the data directory) cannot send the launcher anywhere else.
 */
export interface ClientFilterSpool {
  fd: number;
  /** Requests must be owned by this uid (the server's user). */
  ownerUid: number;
}

/**
 * Creates (or accepts) <data dir>/pg_seccomp for the run. The data directory is resolved once
 * (root gave the path) and then opened without following any link, and must be a directory of
 * the server's user or root; the spool is created with mkdirat and handed to the server's user
 * with fchown on its descriptor. An existing spool must be a real directory of the server's
 * user or root, not group- or world-writable. Anything else refuses set_client_filter for this
 * run: the returned string says why.
 */
export function openClientFilterSpool(dataDir: string, server: { uid: number; gid: number }): ClientFilterSpool | string {
  let real: string;
  try {
    real = realpathSync(dataDir);
  } catch (e) {
    return `the data directory ${dataDir} cannot be resolved (${(e as NodeJS.ErrnoException).code ?? "error"})`;
  }
  let dataFd: number | undefined;
  let spoolFd: number | undefined;
  try {
    dataFd = openDirectoryNoFollow(real, (path, st, isLast) =>
      isLast && st.uid !== server.uid && st.uid !== 0 ? `is owned by uid ${st.uid}, neither the server's user nor root` : undefined,
    );
    const created = makeDirectoryAt(dataFd, "pg_seccomp", 0o700);
    spoolFd = openSubdirectory(dataFd, "pg_seccomp");
    if (spoolFd === undefined) return `${clientFilterSpool(real)} disappeared while it was created`;
    const st = fstatSync(spoolFd);
    if (created && st.uid === (process.getuid?.() ?? 0)) fchownSync(spoolFd, server.uid, server.gid);
    else if (st.uid !== server.uid && st.uid !== 0) return `${clientFilterSpool(real)} is owned by uid ${st.uid}, neither the server's user nor root`;
    if ((st.mode & 0o022) !== 0) return `${clientFilterSpool(real)} is group- or world-writable`;
    const spool = { fd: spoolFd, ownerUid: server.uid };
    spoolFd = undefined;
    return spool;
  } catch (e) {
    if (e instanceof UnsafePathError) return e.path === "pg_seccomp" ? `${clientFilterSpool(real)}: ${e.problem}` : e.message;
    return `${clientFilterSpool(real)}: ${(e as Error).message}`;
  } finally {
    if (dataFd !== undefined) closeSync(dataFd);
    if (spoolFd !== undefined) closeSync(spoolFd);
  }
}

/**
 * A request as the SQL function writes it: exactly the five keys, each a string (at most
 * MAX_FIELD_CHARS) or null. Errors say what is wrong, never what the file holds: it comes from
 * the server's side and may have been made to look like anything.
 */
export function parseClientFilterRequest(bytes: Buffer): ClientFilterRequest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new Error("the request is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) throw new Error("the request is not a JSON object");
  const keys = Object.keys(value);
  if (keys.length !== REQUEST_KEYS.length || !REQUEST_KEYS.every((k) => keys.includes(k))) {
    throw new Error(`the request must have exactly the keys ${REQUEST_KEYS.join(", ")}`);
  }
  const v = value as Record<string, unknown>;
  for (const k of REQUEST_KEYS) {
    const f = v[k];
    if (f !== null && typeof f !== "string") throw new Error(`the request's ${k} is neither a string nor null`);
    if (typeof f === "string" && f.length > MAX_FIELD_CHARS) throw new Error(`the request's ${k} is longer than ${MAX_FIELD_CHARS} characters`);
    // Lists and actions are printable ASCII; anything else (a newline above all) is refused
    // before the lists are parsed (they are parsed as lists, never as policy text).
    if (typeof f === "string" && !/^[\x20-\x7e]*$/.test(f)) throw new Error(`the request's ${k} holds characters other than printable ASCII`);
  }
  return { default: v.default as string | null, allow: v.allow as string | null, log: v.log as string | null, error: v.error as string | null, kill: v.kill as string | null };
}

/**
 * A refusal message for the launcher's output when a request's lists do not compile: the first
 * line only, and a quoted piece of the request is kept only when it is shaped like a syscall name
 * (whatever else the server's side wrote stays out of the launcher's output).
 */
export function describeRequestError(e: unknown): string {
  const first = ((e as Error).message ?? String(e)).split("\n")[0] ?? "";
  const quoted = first.replace(/"(?:[^"\\]|\\.)*"/g, (q) => (/^"[A-Za-z0-9_]{1,32}"$/.test(q) ? q : '"(not shown)"'));
  return quoted.replace(/[^\x20-\x7e]/g, "?").slice(0, 200);
}

/**
 * Reads and removes a backend's request (a regular file of the server's user, at most
 * MAX_REQUEST_BYTES, opened relative to the spool descriptor without following links, never
 * opened for I/O if it is anything else); the session filter is its role's, from the context the
 * launcher's classifier pinned for it (never from its title).
 */
export function takeClientFilterRequest(
  spool: ClientFilterSpool | string | undefined, pid: number, policy: Policy, ctx: ContextSpec | undefined,
): { req: ClientFilterRequest; session: FilterSpec } {
  if (spool === undefined || typeof spool === "string") throw new ClientFilterRefusal(`set_client_filter is off for this run${spool ? `: ${spool}` : ""}`, "55000");
  const name = `${pid}.json`;
  let bytes: Buffer;
  try {
    bytes = readRegularFileAt(spool.fd, name, MAX_REQUEST_BYTES, { owner: spool.ownerUid });
  } catch (e) {
    throw new Error(e instanceof UnsafePathError ? `the request file ${e.message}` : "the request file cannot be read");
  } finally {
    // Consumed either way; removing the name never follows it (a link goes, not its target).
    try {
      removeNameAt(spool.fd, name);
    } catch {
      /* a directory of that name: the server's own mess, in its own directory */
    }
  }
  const req = parseClientFilterRequest(bytes);
  if (ctx?.context !== "session") throw new ClientFilterRefusal(`pid ${pid} is not a classified client backend`, "55000");
  const session = (ctx.role !== undefined ? policy.roles.get(ctx.role) : undefined) ?? policy.session;
  return { req, session };
}
