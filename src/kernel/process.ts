// Process-level calls the launcher needs around the exec of postgres.

import { prctl } from "./libc.js";
import { KernelError } from "./errors.js";
import { lastErrno } from "./libc.js";

const PR_SET_PDEATHSIG = 1;
const PR_SET_DUMPABLE = 4;

/** The signal this process gets when the thread that forked it exits (survives execve). */
export function setParentDeathSignal(signal: number): void {
  if (prctl(PR_SET_PDEATHSIG, signal) !== 0) throw new KernelError("prctl(PR_SET_PDEATHSIG)", lastErrno());
}

/**
 * Makes this process non-dumpable: /proc/PID/mem, ptrace and pidfd_getfd of it then need
 * CAP_SYS_PTRACE, even for a process of the same user, and it leaves no core file. Process-wide
 * (every thread); reset by execve, so it holds for this program only.
 */
export function setNotDumpable(): void {
  if (prctl(PR_SET_DUMPABLE, 0) !== 0) throw new KernelError("prctl(PR_SET_DUMPABLE)", lastErrno());
}

/**
 * Becomes `user` for good: supplementary groups, gid, then uid (in that order: after setuid
 * the rest is no longer permitted). Node's own calls set every thread's ids.
 */
export function becomeUser(user: { name: string; uid: number; gid: number }): void {
  // Node has initgroups on POSIX systems; @types/node 20 does not declare it.
  (process as unknown as { initgroups(user: string, extraGroup: number): void }).initgroups(user.name, user.gid);
  process.setgid!(user.gid);
  process.setuid!(user.uid);
  if (process.getuid!() !== user.uid || process.geteuid!() !== user.uid || process.getgid!() !== user.gid) {
    throw new Error(`could not switch to user ${user.name} (uid ${user.uid}, gid ${user.gid})`);
  }
}
