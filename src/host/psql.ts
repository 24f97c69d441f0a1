// One way to run a one-shot psql: the flags every caller wants (no .psqlrc, unaligned, tuples
// only, stop on the first error), the SQL as one -c argument, an environment and user given by
// the caller, a timeout and a bounded output. The launcher's long-lived monitoring session
// (supervisor/monitor.ts) is a different thing: one process answering many questions.

import { execFile, spawnSync } from "node:child_process";

export interface PsqlCommand {
  /** The psql binary. */
  psql: string;
  sql: string;
  /** Connection flags (-d DB, -U ROLE), before -c. */
  connect?: readonly string[];
  /** -q: no command tags ("SET", "DO") in the output. */
  quiet?: boolean;
  env?: NodeJS.ProcessEnv;
  /** Run as this user (the server's, so that peer authentication maps it and files it writes are its). */
  uid?: number;
  gid?: number;
  timeoutMs?: number;
}

export interface PsqlResult {
  ok: boolean;
  stdout: string;
  stderr: string;
}

/** psql's arguments for a command. */
export function psqlArgs(c: PsqlCommand): string[] {
  return ["-X", "-A", "-t", ...(c.quiet ? ["-q"] : []), "-v", "ON_ERROR_STOP=1", ...(c.connect ?? []), "-c", c.sql];
}

const MAX_OUTPUT = 1 << 20;

function options(c: PsqlCommand) {
  return {
    ...(c.env ? { env: c.env } : {}),
    ...(c.uid !== undefined ? { uid: c.uid } : {}),
    ...(c.gid !== undefined ? { gid: c.gid } : {}),
    timeout: c.timeoutMs ?? 120_000,
    encoding: "utf8" as const,
    maxBuffer: MAX_OUTPUT,
  };
}

/** Runs psql and waits. */
export function runPsqlSync(c: PsqlCommand): PsqlResult {
  const r = spawnSync(c.psql, psqlArgs(c), options(c));
  return { ok: r.status === 0, stdout: r.stdout ?? "", stderr: r.stderr ?? r.error?.message ?? "" };
}

/** Runs psql; resolves when it ends (ok false on a failure, with its stderr or the spawn error). */
export function runPsql(c: PsqlCommand): Promise<PsqlResult> {
  return new Promise((res) => {
    execFile(c.psql, psqlArgs(c), options(c), (err, stdout, stderr) => {
      res({ ok: !err, stdout: stdout ?? "", stderr: stderr || (err ? err.message : "") });
    });
  });
}
