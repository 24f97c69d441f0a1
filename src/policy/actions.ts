// Filter actions and their precedence. The seed's four (allow, log, error, kill) plus trap and
// terminate. Each but terminate is a seccomp action (src/seccomp), and precedence is the
// kernel's rule for stacked filters on those, most restrictive first: kill > trap > error > log
// > allow. terminate (the call fails with an errno, and run's supervisor then ends the session
// with SIGTERM, as pg_terminate_backend does) sits between trap and error: it ends more than
// error (the session, not just the call) and less than trap or kill, whose signal ends the
// process abruptly, which the postmaster answers by restarting every session with crash
// recovery. In the kernel it is an errno (SECCOMP_RET_ERRNO) that `run` routes to its supervisor.

import { PolicyError, type SourceLoc } from "./errors.js";
import { type SeccompActionName } from "../seccomp/index.js";
import { errnoNumber, errnoName } from "../syscalls/errno.js";

export type ActionKind = "allow" | "log" | "error" | "terminate" | "trap" | "kill";

export interface Action {
  kind: ActionKind;
  /** For "error" and "terminate": the errno returned. Always set for those, absent otherwise. */
  errno?: number;
}

export const ACTION_KINDS: readonly ActionKind[] = ["allow", "log", "error", "terminate", "trap", "kill"];

/** Actions that fail the call with an errno (terminate then ends the session too). */
export function hasErrno(kind: ActionKind): kind is "error" | "terminate" {
  return kind === "error" || kind === "terminate";
}

/** The seccomp action each policy action compiles to. */
const SECCOMP_ACTION: Readonly<Record<ActionKind, SeccompActionName>> = {
  allow: "ALLOW", log: "LOG", error: "ERRNO", terminate: "ERRNO", trap: "TRAP", kill: "KILL_PROCESS",
};

/** Precedence (higher is more restrictive): the kernel's order, with terminate between error and trap. */
const RANK: Readonly<Record<ActionKind, number>> = { allow: 0, log: 1, error: 2, terminate: 3, trap: 4, kill: 5 };

export function seccompActionFor(kind: ActionKind): SeccompActionName {
  return SECCOMP_ACTION[kind];
}

/** Orders actions by restrictiveness (higher is more restrictive), as the kernel orders their return values. */
export function actionRank(a: Action): number {
  return RANK[a.kind];
}

/**
 * The more restrictive of two actions. On a tie the second wins, as with stacked seccomp
 * filters, where the most recently installed filter's data (the errno) is returned.
 */
export function moreRestrictive(first: Action, second: Action): Action {
  return RANK[first.kind] > RANK[second.kind] ? first : second;
}

export function sameAction(a: Action, b: Action): boolean {
  return a.kind === b.kind && a.errno === b.errno;
}

export const ALLOW: Action = { kind: "allow" };

/**
 * Text form of an action: `allow`, `log`, `kill`, `trap`, and `error` with its errno when it
 * differs from the policy's default errno (`error:ENOSYS`).
 */
export function formatAction(a: Action, defaultErrno?: number): string {
  if (!hasErrno(a.kind)) return a.kind;
  if (a.errno === undefined || a.errno === defaultErrno) return a.kind;
  return `${a.kind}:${errnoName(a.errno)}`;
}

/** Parses an errno given by name (`EPERM`) or number (`1`). */
export function parseErrno(text: string, loc: SourceLoc | undefined): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n >= 1 && n <= 4095) return n;
    throw new PolicyError(loc, `errno ${t} is out of range`, "use a value from 1 to 4095 or a name such as EPERM");
  }
  const n = errnoNumber(t.toUpperCase());
  if (n === undefined) {
    throw new PolicyError(loc, `unknown errno "${t}"`, "use a Linux errno name such as EPERM, EACCES or ENOSYS, or a number");
  }
  return n;
}

/**
 * Parses an action as written in a `*_default` setting or `syscall_unknown_action`:
 * `allow`, `log`, `error`, `error:ENOSYS`, `terminate`, `terminate:EPERM`, `trap`, `kill`. `errno:X` is accepted as a synonym
 * of `error:X`.
 */
export function parseAction(text: string, defaultErrno: number, loc: SourceLoc | undefined): Action {
  const t = text.trim().toLowerCase();
  const colon = t.indexOf(":");
  const head = colon < 0 ? t : t.slice(0, colon);
  const tail = colon < 0 ? undefined : text.trim().slice(colon + 1);
  if (head === "error" || head === "errno" || head === "terminate") {
    return { kind: head === "terminate" ? "terminate" : "error", errno: tail === undefined ? defaultErrno : parseErrno(tail, loc) };
  }
  if (tail !== undefined) {
    throw new PolicyError(loc, `action "${head}" takes no ":" argument`, `only error and terminate take an errno, as in error:EPERM`);
  }
  if (head === "allow" || head === "log" || head === "trap" || head === "kill") return { kind: head };
  throw new PolicyError(loc, `unknown action "${text.trim()}"`, "use one of allow, log, error, error:ERRNO, terminate, trap, kill");
}
