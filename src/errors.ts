// What kind of failure an error is, so that the CLI chooses an exit code by kind (src/cli/output.ts)
// and not by matching class names. Pure; imports nothing, imported by any layer.
//
//   usage    the invocation or the environment it names is wrong (a flag, no such server)   exit 2
//   input    a file or text given to a command cannot be read as what it should be         exit 1
//   policy   a policy cannot be read, checked or compiled (it says file:line:column)        exit 1
//   runtime  the kernel or the system refused something pg_seccomp needed                   exit 1
//
// An error without a kind is a bug: the CLI reports it as an internal error (exit 70).

export type ErrorKind = "usage" | "input" | "policy" | "runtime";

export const ERROR_KINDS: readonly ErrorKind[] = ["usage", "input", "policy", "runtime"];

/** An error whose message is written for the user, and says what kind of failure it is. */
export class PgSeccompError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
  }
}

/** The kind of `e`, or undefined when it is no PgSeccompError (an internal error). */
export function errorKindOf(e: unknown): ErrorKind | undefined {
  return e instanceof PgSeccompError ? e.kind : undefined;
}

/** A usage error raised below the CLI: a server, log or data directory that is not there, an export that cannot be written. */
export class UsageProblem extends PgSeccompError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("usage", message, options);
  }
}
