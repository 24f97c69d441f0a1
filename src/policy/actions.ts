// Filter actions and their precedence. The seed's four (allow, log, error, kill) plus trap.
// Each is a seccomp action (src/seccomp), and precedence is the kernel's rule for stacked
// filters on those, most restrictive first: kill > trap > error > log > allow.

import { PolicyError, type SourceLoc } from "./errors.js";
import { isMoreRestrictive, restrictiveness, seccompRet, type SeccompActionName } from "../seccomp/index.js";
import { errnoNumber, errnoName } from "../syscalls/errno.js";

export type ActionKind = "allow" | "log" | "error" | "trap" | "kill";

export interface Action {
  kind: ActionKind;
  /** For "error": the errno returned. Always set for "error", absent otherwise. */
  errno?: number;
}

export const ACTION_KINDS: readonly ActionKind[] = ["allow", "log", "error", "trap", "kill"];

/** The seccomp action each policy action compiles to. */
const SECCOMP_ACTION: Readonly<Record<ActionKind, SeccompActionName>> = {
  allow: "ALLOW", log: "LOG", error: "ERRNO", trap: "TRAP", kill: "KILL_PROCESS",
};

export function seccompActionFor(kind: ActionKind): SeccompActionName {
  return SECCOMP_ACTION[kind];
}

/** Orders actions by restrictiveness (higher is more restrictive), as the kernel orders their return values. */
export function actionRank(a: Action): number {
  return restrictiveness(seccompRet(SECCOMP_ACTION[a.kind]));
}

/**
 * The more restrictive of two actions. On a tie the second wins, as with stacked seccomp
 * filters, where the most recently installed filter's data (the errno) is returned.
 */
export function moreRestrictive(first: Action, second: Action): Action {
  return isMoreRestrictive(seccompRet(SECCOMP_ACTION[first.kind]), seccompRet(SECCOMP_ACTION[second.kind])) ? first : second;
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
  if (a.kind !== "error") return a.kind;
  if (a.errno === undefined || a.errno === defaultErrno) return "error";
  return `error:${errnoName(a.errno)}`;
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
 * `allow`, `log`, `error`, `error:ENOSYS`, `trap`, `kill`. `errno:X` is accepted as a synonym
 * of `error:X`.
 */
export function parseAction(text: string, defaultErrno: number, loc: SourceLoc | undefined): Action {
  const t = text.trim().toLowerCase();
  const colon = t.indexOf(":");
  const head = colon < 0 ? t : t.slice(0, colon);
  const tail = colon < 0 ? undefined : text.trim().slice(colon + 1);
  if (head === "error" || head === "errno") {
    return { kind: "error", errno: tail === undefined ? defaultErrno : parseErrno(tail, loc) };
  }
  if (tail !== undefined) {
    throw new PolicyError(loc, `action "${head}" takes no ":" argument`, `only error takes an errno, as in error:EPERM`);
  }
  if (head === "allow" || head === "log" || head === "trap" || head === "kill") return { kind: head };
  throw new PolicyError(loc, `unknown action "${text.trim()}"`, "use one of allow, log, error, error:ERRNO, trap, kill");
}
