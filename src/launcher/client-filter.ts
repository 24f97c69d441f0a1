// set_client_filter(default_action, allow_list, log_list, error_list, kill_list), the seed's
// function, without a C extension. The SQL function (src/sql/install.ts) writes the request to
// <data dir>/pg_seccomp/<backend pid>.json and then "knocks": it seeks a file to
// CLIENT_FILTER_KNOCK, an lseek the installed program hands to the supervisor. While that call
// waits, the launcher installs the requested filter *into the calling backend* (ptrace; see
// kernel/ptrace.ts) and only then lets the call return, so the function returns with the filter
// in force. The backend's pid comes from the kernel's notification, never from the request. A
// filter can only add restrictions, and once per session, as in the seed's extension.

import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { compilePolicy } from "../bpf/compile.js";
import type { Insn } from "../bpf/insn.js";
import { ACTION_KINDS } from "../policy/actions.js";
import { formatAction } from "../policy/actions.js";
import { parsePolicyText, type FilterSpec, type Policy } from "../policy/policy.js";
import { errnoName } from "../syscalls/errno.js";
import type { Arch } from "../syscalls/index.js";
import type { ContextSpec } from "../policy/decision.js";

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
 * The requested filter as a program, with pgseccomp's meanings: NULL is the session's own list
 * (or default), '*' in a list is the global list for that action.
 */
export function clientFilterProgram(policy: Policy, arch: Arch, session: FilterSpec, req: ClientFilterRequest): Insn[] {
  const texts = (f: FilterSpec, kind: string) => f.entries.filter((e) => e.action.kind === kind && !e.inheritedFrom).map((e) => e.text);
  const lines = [`syscall_error_errno = '${errnoName(policy.errorErrno)}'`];
  lines.push(`global_syscall_default = '${req.default ?? formatAction(session.defaultAction, policy.errorErrno)}'`);
  for (const kind of ACTION_KINDS) {
    if (kind === "trap") continue;
    const given = req[kind as keyof ClientFilterRequest];
    let list: string[];
    if (given === null || given === undefined) {
      list = session.entries.filter((e) => e.action.kind === kind).map((e) => e.text);
    } else {
      list = given.split(",").map((t) => t.trim()).filter(Boolean).flatMap((t) => (t === "*" ? texts(policy.global, kind) : [t]));
    }
    lines.push(`global_syscall_${kind} = '${[...new Set(list)].join(", ").replace(/'/g, "''")}'`);
  }
  const p = parsePolicyText(lines.join("\n") + "\n", "set_client_filter");
  return compilePolicy(p, arch, { context: "global" });
}

/**
 * Reads and removes a backend's request; the session filter is its role's, from the context the
 * launcher's classifier pinned for it (never from its title).
 */
export function takeClientFilterRequest(dataDir: string, pid: number, policy: Policy, ctx: ContextSpec | undefined): { req: ClientFilterRequest; session: FilterSpec } {
  const file = join(clientFilterSpool(dataDir), `${pid}.json`);
  const text = readFileSync(file, "utf8").trim();
  rmSync(file, { force: true });
  const req = JSON.parse(text) as ClientFilterRequest;
  if (ctx?.context !== "session") throw new Error(`pid ${pid} is not a classified client backend`);
  const session = (ctx.role !== undefined ? policy.roles.get(ctx.role) : undefined) ?? policy.session;
  return { req, session };
}
