// How the CLI reports: errors as one message without a stack trace, notes on stderr.

import { PolicyError, formatLoc, type PolicyNote } from "../policy/errors.js";
import { safeJson } from "../render/format.js";

export class UsageError extends Error {
  override name = "UsageError";
}

/** Errors whose message is written for the user (they carry file:line or say what to do). */
const USER_ERRORS = new Set(["PolicyError", "UsageError", "CompileError", "AsmError", "KernelError", "CommanderError"]);

export function reportError(err: unknown): number {
  const e = err instanceof Error ? err : new Error(String(err));
  if (e instanceof PolicyError) {
    process.stderr.write(`pg_seccomp: error: ${e.loc ? formatLoc(e.loc) + ": " : ""}${e.problem}\n${e.hint ? `hint: ${e.hint}\n` : ""}`);
    return 1;
  }
  if (USER_ERRORS.has(e.name)) {
    process.stderr.write(`pg_seccomp: error: ${e.message}\n`);
    return e.name === "UsageError" ? 2 : 1;
  }
  process.stderr.write(`pg_seccomp: internal error: ${e.message}\n`);
  if (process.env.PG_SECCOMP_DEBUG) process.stderr.write(`${e.stack}\n`);
  else process.stderr.write("hint: set PG_SECCOMP_DEBUG=1 for details, and please report this\n");
  return 70;
}

export function printNotes(notes: readonly PolicyNote[]): void {
  for (const n of notes) process.stderr.write(`pg_seccomp: note: ${formatLoc(n.loc)}: ${n.message}\n`);
}

export function writeJson(value: unknown): void {
  process.stdout.write(safeJson(value, 2) + "\n");
}
