// seccomp return values (linux/seccomp.h): the actions, their names, the data bits, and the
// kernel's rule for stacked filters. Pure data; imports nothing. Everything in the project that
// builds or reads a return value goes through here.

// The values. The top 16 bits select the action; the low 16 bits carry data (errno, trap code).
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_KILL_THREAD = 0x00000000;
export const SECCOMP_RET_TRAP = 0x00030000;
export const SECCOMP_RET_ERRNO = 0x00050000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
export const SECCOMP_RET_TRACE = 0x7ff00000;
export const SECCOMP_RET_LOG = 0x7ffc0000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ACTION_FULL = 0xffff0000;
export const SECCOMP_RET_DATA = 0x0000ffff;

/** The kernel's names for the actions (as in the SECCOMP_RET_* macros, without the prefix). */
export type SeccompActionName =
  | "KILL_PROCESS" | "KILL_THREAD" | "TRAP" | "ERRNO" | "USER_NOTIF" | "TRACE" | "LOG" | "ALLOW";

/** One seccomp action: its value, its names, and how its data bits are shown. */
export interface SeccompActionInfo {
  readonly name: SeccompActionName;
  /** The name in /proc/sys/kernel/seccomp/actions_avail ("kill_process", "errno", ...). */
  readonly availName: string;
  /** The action part of the return value (data bits zero), unsigned. */
  readonly value: number;
  /** ERRNO/TRAP/TRACE mean something by their data, so ERRNO(0) is shown; the others only when nonzero. */
  readonly alwaysShowData: boolean;
}

/** Every seccomp action, in the kernel's order of precedence (most restrictive first). */
export const SECCOMP_RET_ACTIONS: readonly SeccompActionInfo[] = [
  { name: "KILL_PROCESS", availName: "kill_process", value: SECCOMP_RET_KILL_PROCESS, alwaysShowData: false },
  { name: "KILL_THREAD", availName: "kill_thread", value: SECCOMP_RET_KILL_THREAD, alwaysShowData: false },
  { name: "TRAP", availName: "trap", value: SECCOMP_RET_TRAP, alwaysShowData: true },
  { name: "ERRNO", availName: "errno", value: SECCOMP_RET_ERRNO, alwaysShowData: true },
  { name: "USER_NOTIF", availName: "user_notif", value: SECCOMP_RET_USER_NOTIF, alwaysShowData: false },
  { name: "TRACE", availName: "trace", value: SECCOMP_RET_TRACE, alwaysShowData: true },
  { name: "LOG", availName: "log", value: SECCOMP_RET_LOG, alwaysShowData: false },
  { name: "ALLOW", availName: "allow", value: SECCOMP_RET_ALLOW, alwaysShowData: false },
];

const BY_VALUE: ReadonlyMap<number, SeccompActionInfo> = new Map(SECCOMP_RET_ACTIONS.map((a) => [a.value >>> 0, a] as const));
const BY_NAME: ReadonlyMap<string, SeccompActionInfo> = new Map(SECCOMP_RET_ACTIONS.map((a) => [a.name, a] as const));

/** The action part of a return value (ret & SECCOMP_RET_ACTION_FULL), unsigned. */
export function retAction(ret: number): number {
  return (ret & SECCOMP_RET_ACTION_FULL) >>> 0;
}

/** The data part of a return value (ret & SECCOMP_RET_DATA): the errno of ERRNO, the code of TRAP/TRACE. */
export function retData(ret: number): number {
  return ret & SECCOMP_RET_DATA;
}

/** The action a return value selects; undefined when its top 16 bits are no seccomp action (the kernel kills the process). */
export function seccompActionOf(ret: number): SeccompActionInfo | undefined {
  return BY_VALUE.get(retAction(ret));
}

/** The action of a given name ("ERRNO"); undefined for anything else. */
export function seccompActionNamed(name: string): SeccompActionInfo | undefined {
  return BY_NAME.get(name);
}

/** The return value of `action` with `data` in its low 16 bits (only the low 16 bits of data are kept). */
export function seccompRet(action: SeccompActionName, data = 0): number {
  return (BY_NAME.get(action)!.value | (data & SECCOMP_RET_DATA)) >>> 0;
}

/**
 * "ALLOW", "ERRNO(13)", "TRAP(0)", "KILL_PROCESS", or NAME(data) when an action that ignores its
 * data has nonzero data bits ("ALLOW(5)"); undefined when the action part is no seccomp action.
 */
export function formatSeccompRet(ret: number): string | undefined {
  const info = seccompActionOf(ret);
  if (info === undefined) return undefined;
  const data = retData(ret);
  return info.alwaysShowData || data !== 0 ? `${info.name}(${data})` : info.name;
}

/**
 * formatSeccompRet, and "UNKNOWN(0x12340000)" for a value whose action part is no seccomp action
 * (the kernel treats those as KILL_PROCESS). ERRNO data is shown as stored; the kernel caps the
 * errno it returns at 4095.
 */
export function describeSeccompRet(ret: number): string {
  return formatSeccompRet(ret) ?? `UNKNOWN(0x${(ret >>> 0).toString(16).padStart(8, "0")})`;
}

// ---------------------------------------------------------------------------------------------
// Precedence and stacking

/**
 * The action part as the kernel compares it: ACTION_ONLY(ret) is (s32)(ret & SECCOMP_RET_ACTION_FULL),
 * and the smaller value is the more restrictive, so KILL_PROCESS (negative) < KILL_THREAD < TRAP
 * < ERRNO < USER_NOTIF < TRACE < LOG < ALLOW.
 */
export function actionOnly(ret: number): number {
  return (ret & SECCOMP_RET_ACTION_FULL) | 0;
}

/** True when `a`'s action is strictly more restrictive than `b`'s, by the kernel's comparison. */
export function isMoreRestrictive(a: number, b: number): boolean {
  return actionOnly(a) < actionOnly(b);
}

/**
 * A number that orders return values by restrictiveness (higher is more restrictive), for
 * sorting; the same order as isMoreRestrictive.
 */
export function restrictiveness(ret: number): number {
  return -actionOnly(ret);
}

/**
 * What the kernel returns for one call given each stacked filter's return value, `newestFirst[0]`
 * being the most recently installed filter's (kernel/seccomp.c, seccomp_run_filters: start from
 * ALLOW, walk from the newest filter to the oldest, keep a value only when its action is strictly
 * more restrictive). So the most restrictive action wins, and among equals the newest filter's data.
 */
export function stackedRet(newestFirst: readonly number[]): number {
  let ret = SECCOMP_RET_ALLOW;
  for (const r of newestFirst) if (isMoreRestrictive(r, ret)) ret = r >>> 0;
  return ret >>> 0;
}
