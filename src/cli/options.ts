// Options and helpers the pg_seccomp commands share: arch, context, role and database options,
// -D/--cluster, loading a policy with its notes, writing an output file.

import { Option } from "commander";
import { readFileSync, writeFileSync } from "node:fs";
import { readPolicyFile } from "../policy/source.js";
import { loadPolicyFile, parsePolicyText, type Policy } from "../policy/policy.js";
import { CONTEXT_KINDS, type ContextKind, type ContextSpec } from "../policy/decision.js";
import { ARCHES, hostArch, type Arch } from "../syscalls/index.js";
import { printNotes, UsageError } from "./output.js";
import { dataDirForLookup, findDebianCluster } from "../host/data-dir.js";

export const archOption = () =>
  new Option("--arch <arch>", "target architecture").choices(ARCHES as string[]).default(safeHostArch(), "this machine's");
export const contextOption = () =>
  new Option("--context <context>", "process context: global (every process), session (client backends), postmaster, a backend type, or unclassified")
    .choices(CONTEXT_KINDS as string[])
    .default("session");
export const roleOption = () => new Option("--role <role>", "a role with per-role session settings (session_syscall_*.<role>)");
export const databaseOption = () => new Option("--database <db>", "a database with settings of its own (database_syscall_*.<db>)");

export function safeHostArch(): Arch {
  try {
    return hostArch();
  } catch {
    return "x86_64";
  }
}

/** -D DIR (a data or configuration directory) or --cluster VERSION/NAME: the data directory. */
export function dataDirOption(opts: { pgdata?: string; cluster?: string }): string | undefined {
  if (opts.pgdata !== undefined && opts.cluster !== undefined) throw new UsageError("give -D or --cluster, not both");
  if (opts.cluster !== undefined) return findDebianCluster(opts.cluster).dataDir;
  return opts.pgdata === undefined ? undefined : dataDirForLookup(opts.pgdata);
}

/** A policy's text: a file (bounded, regular files only: readPolicyFile), or standard input for "-". */
export function readPolicyText(path: string): string {
  try {
    return path === "-" ? readFileSync(0, "utf8") : readPolicyFile(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new UsageError(`policy file "${path}" does not exist`);
    throw new UsageError(`cannot read policy file "${path}": ${code === "ENOTREG" || code === "EFBIG" ? (e as Error).message : code ?? (e as Error).message}`);
  }
}

/** A policy given as text (standard input), read as the file `name`. */
export function loadPolicyText(text: string, name: string): Policy {
  const p = parsePolicyText(text, name);
  printNotes(p.notes);
  return p;
}

export function loadPolicy(path: string): Policy {
  const p = loadPolicyFile(path);
  printNotes(p.notes);
  if (!p.enabled && !p.offByDefault) process.stderr.write(`pg_seccomp: note: ${path} sets seccomp = off: run would install no filter\n`);
  return p;
}

export function contextOf(opts: { context: string; role?: string; database?: string }, policy: Policy): ContextSpec {
  const c: ContextSpec = { context: opts.context as ContextKind };
  if (opts.role !== undefined || opts.database !== undefined) {
    if (c.context !== "session" && c.context !== "parallel_worker" && c.context !== "walsender" && c.context !== "session_program") {
      throw new UsageError("--role and --database apply to the session, parallel_worker, walsender and session_program contexts (a walsender with --database is one of replication=database)");
    }
    if (opts.role !== undefined) {
      if (!policy.roles.has(opts.role)) process.stderr.write(`pg_seccomp: note: role "${opts.role}" has no settings of its own; it gets the session filter\n`);
      c.role = opts.role;
    }
    if (opts.database !== undefined) {
      if (!policy.databases.has(opts.database)) process.stderr.write(`pg_seccomp: note: database "${opts.database}" has no settings of its own\n`);
      c.database = opts.database;
    }
  }
  return c;
}

export function writeOutput(output: string | undefined, data: string | Buffer, what: string): void {
  if (output === undefined || output === "-") {
    process.stdout.write(data);
    return;
  }
  try {
    writeFileSync(output, data);
  } catch (e) {
    throw new UsageError(`cannot write ${output}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}; check that its directory exists and is writable`);
  }
  process.stderr.write(`pg_seccomp: wrote ${what} to ${output}\n`);
}

export const collect = (value: string, previous: string[] = []) => [...previous, value];
