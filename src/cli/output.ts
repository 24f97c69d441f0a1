// How the CLI reports: errors as one message without a stack trace, notes on stderr.

import { PolicyError, formatLoc, type PolicyNote } from "../policy/errors.js";
import { safeJson } from "../render/format.js";
import { errorKindOf, PgSeccompError, type ErrorKind } from "../errors.js";

/** The invocation is wrong: a flag, a missing argument, a server that is not there. */
export class UsageError extends PgSeccompError {
  override name = "UsageError";
  constructor(message: string) {
    super("usage", message);
  }
}

/** The exit code of each kind of failure (src/errors.ts); an error without a kind exits 70. */
export const EXIT_CODE: Readonly<Record<ErrorKind, number>> = { usage: 2, input: 1, policy: 1, runtime: 1 };

/** The program name every message starts with, as pg_dump's "pg_dump: error: ..." and "pg_dump: hint: ...". */
export const PROGRAM = "pg_seccomp";

/**
 * A message in PostgreSQL's client style: `pg_seccomp: error: ...`, and each "hint: ..." line
 * (messages from the layers below put their hint on a line of its own) as `pg_seccomp: hint: ...`.
 */
export function clientMessage(level: "error" | "internal error" | "warning" | "note", message: string): string {
  return `${PROGRAM}: ${level}: ${message.replace(/^hint: /gm, `${PROGRAM}: hint: `)}\n`;
}

export function reportError(err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof PolicyError) {
    process.stderr.write(clientMessage("error", `${e.loc ? formatLoc(e.loc) + ": " : ""}${e.problem}${e.hint ? `\nhint: ${e.hint}` : ""}`));
    return 1;
  }
  const kind = errorKindOf(e);
  if (kind !== undefined) {
    process.stderr.write(clientMessage("error", e.message));
    return EXIT_CODE[kind];
  }
  process.stderr.write(clientMessage("internal error", e.message));
  if (process.env.PG_SECCOMP_DEBUG) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write(`${PROGRAM}: hint: set PG_SECCOMP_DEBUG=1 for details, and please report this\n`);
  return 70;
}

export function printNotes(notes: readonly PolicyNote[]): void {
  for (const n of notes) process.stderr.write(`pg_seccomp: note: ${formatLoc(n.loc)}: ${n.message}\n`);
}

export function writeJson(value: unknown): void {
  process.stdout.write(safeJson(value, 2) + "\n");
}
