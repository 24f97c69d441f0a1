// Run syscalls under a seccomp filter in a throwaway child process and report what happened.
//
//   const run = await runUnderFilter(prog, [{ nr: NR.getppid }, { nr: NR.getuid }]);
//   run.results[0]  // { kind: "errno", errno: 13, code: "EACCES", ... }
//   run.outcome     // "finished" | "killed" | "thread-killed" | ...; run.signal === "SIGSYS"
//
// The child (probe-child.ts, compiled to dist/test/support/probe-child.js) is a fresh `node`
// that installs the filter on its main thread only (no TSYNC: Node's helper threads stay
// unfiltered), then issues each call through libc syscall() and writes one record per call to
// fd 3 right away. A call with no record did not return: the child died (or its main thread
// did) inside it.
//
// WHAT A PROBE FILTER MUST ALLOW on the child's main thread:
//   - write(2)         every report is one raw write of 32 bytes to fd 3;
//   - exit_group(2)    the child's final exit (nothing else: no Node teardown);
//   - rt_sigreturn(2)  only if the filter TRAPs: the SIGSYS handler returns through it.
// Everything else the child's main thread does after the filter is installed is the calls
// themselves. The window is kept quiet (preallocated buffers, no awaits, synchronous koffi
// calls, gc() just before installing, no JIT in the child), but a default-deny filter that
// also refuses mmap/munmap/madvise/futex/mprotect could still catch V8 housekeeping; prefer
// filters that allow what they do not test.

import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import type { Insn } from "../../src/bpf/insn.js";
import { close, errnoName, hostKernelArch, pidfdGetFd, pidfdOpen, seccompSupport } from "../../src/kernel/index.js";
import { hostArch as tableArch, syscallNumber } from "../../src/syscalls/index.js";
import { scaled } from "./time-scale.js";

// ---- Wire format between this module (parent) and probe-child.ts (child) ----
//
// The child writes fixed 32-byte little-endian records to fd 3 with one raw write(2) each:
//   0  u32 kind            RECORD_*
//   4  i32 index           call index (-1 for non-call records)
//   8  u32 ret lo          raw libc return value (syscall(2): -1 on failure), 64-bit
//  12  u32 ret hi
//  16  i32 errno           errno after the call when ret == -1, else 0
//  20  i32 trapped         1 if a SIGSYS arrived during the call (SECCOMP_RET_TRAP), else 0
//  24  i32 trap data       SECCOMP_RET_DATA of the trap (siginfo si_errno)
//  28  i32 trap nr         syscall number the trap reported (siginfo si_syscall)

export const RECORD_SIZE = 32;

/** Pre-filter record sent through the same code path as results (warms it up). ret = getpid(). */
export const RECORD_HELLO = 0;
/** The filter is installed. ret = listener fd (newListener) or 0. */
export const RECORD_READY = 1;
/** One call's result. */
export const RECORD_RESULT = 2;
/** installFilter failed; errno says why. The child then exits with EXIT_INSTALL_FAILED. */
export const RECORD_INSTALL_FAILED = 3;
/** Every call has reported; exit_group(0) follows. */
export const RECORD_DONE = 4;

/** Exit codes of the child other than 0. */
export const EXIT_BAD_SPEC = 2;
export const EXIT_INSTALL_FAILED = 3;
/** A report could not be written (the filter refused write(2) to fd 3?). */
export const EXIT_REPORT_FAILED = 4;

/** What the parent sends on the child's stdin (JSON). */
export interface ProbeSpec {
  /** [code, jt, jf, k] per instruction. */
  prog: Array<[number, number, number, number]>;
  /** Syscall number and up to six arguments as decimal strings of unsigned 64-bit values. */
  calls: Array<{ nr: number; args: string[] }>;
  newListener: boolean;
  noNewPrivs: boolean;
}

// ---- Parent side ----

export interface ProbeCall {
  nr: number;
  /** Up to six arguments; each is passed as a full 64-bit register (negative values mod 2^64). */
  args?: readonly bigint[];
}

interface ResultBase {
  /** Position in the calls array. */
  index: number;
  nr: number;
}

/** The call returned normally (including 0 from SECCOMP_RET_ERRNO|0). `value` is signed. */
export interface ProbeReturned extends ResultBase {
  kind: "returned";
  value: bigint;
}

/** The call failed: libc syscall() returned -1 with errno set. */
export interface ProbeFailed extends ResultBase {
  kind: "errno";
  errno: number;
  /** errno name, e.g. "EACCES". */
  code: string;
}

/**
 * The call was trapped (SECCOMP_RET_TRAP): SIGSYS arrived and the child's handler recorded
 * it. `data` is the action's SECCOMP_RET_DATA; `value` is what the syscall "returned" once
 * the handler was done (the kernel leaves the syscall number in the return register).
 */
export interface ProbeTrapped extends ResultBase {
  kind: "trapped";
  data: number;
  trappedNr: number;
  value: bigint;
}

export type ProbeResult = ProbeReturned | ProbeFailed | ProbeTrapped;

export type ProbeOutcome =
  /** Every call reported and the child exited 0. */
  | "finished"
  /** The process died from a signal (seccomp KILL_PROCESS and unhandled traps: SIGSYS). */
  | "killed"
  /** The main thread vanished while helper threads lived on (seccomp KILL_THREAD); we then killed the rest. */
  | "thread-killed"
  /** installFilter failed in the child (see installError). */
  | "install-failed"
  /** The child exited without finishing: bad spec, a refused report write, or a crash. */
  | "incomplete"
  /** No progress within timeoutMs; the child was killed. */
  | "timeout";

export interface ProbeRun {
  pid: number;
  outcome: ProbeOutcome;
  /** One entry per call that returned, in call order. results.length < calls.length unless finished. */
  results: ProbeResult[];
  /** Signal that ended the child ("SIGSYS" for a seccomp kill), or null. */
  signal: NodeJS.Signals | null;
  exitCode: number | null;
  /** When outcome is "install-failed". */
  installError?: { errno: number; code: string };
  /** The listener fd number inside the child (newListener only). */
  childListenerFd?: number;
  /** Error thrown by the supervise callback, if any. */
  superviseError?: unknown;
  /** The child's stderr, for diagnostics. */
  stderr: string;
}

export interface ProbeOptions {
  /** Install with SECCOMP_FILTER_FLAG_NEW_LISTENER. */
  newListener?: boolean;
  /**
   * With newListener: called once the filter is installed, with a duplicate of the child's
   * listener fd in this process (pidfd_getfd) and the child's pid. The fd is closed after the
   * promise settles and the child has exited. The child's calls block until answered.
   */
  supervise?: (listener: number, pid: number) => Promise<void> | void;
  /** Set no_new_privs before installing (default true). */
  noNewPrivs?: boolean;
  /** Kill the child if it has not ended after this long (default 15000 ms, times the lab's time scale). */
  timeoutMs?: number;
}

const CHILD = fileURLToPath(new URL("./probe-child.js", import.meta.url));

/**
 * Node flags for the child: gc() to empty the young generation before installing the filter and
 * a 16 MiB semi-space so tens of thousands of calls fit without a scavenge, no background GC
 * threads (no futex wake-ups), and no JIT tiers (no code installation, so no mprotect/mmap of
 * code space in the window). Measured with strace: with these flags, 40000 calls under an
 * allow-all filter show only the calls, write and exit_group on the main thread after seccomp();
 * without them the same run shows futex calls (and, with a small semi-space,
 * mmap/munmap/madvise/mprotect from scavenges).
 */
export const PROBE_NODE_FLAGS: readonly string[] = [
  "--expose-gc",
  "--single-threaded-gc",
  "--min-semi-space-size=16",
  "--no-opt",
  "--no-sparkplug",
];

/** Syscalls a probe filter must allow (see the header): write, exit_group, and rt_sigreturn when trapping. */
export function probeRequiredSyscalls(): { write: number; exit_group: number; rt_sigreturn: number } {
  const { write, exit_group, rt_sigreturn } = hostKernelArch().nr;
  return { write, exit_group, rt_sigreturn };
}

function mainThreadGone(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return false;
  }
}

/** Run `calls` in a fresh child whose main thread has installed `prog`. Never rejects on child failure. */
export function runUnderFilter(prog: readonly Insn[], calls: readonly ProbeCall[], opts: ProbeOptions = {}): Promise<ProbeRun> {
  const spec: ProbeSpec = {
    prog: prog.map((i) => [i.code, i.jt, i.jf, i.k >>> 0]),
    calls: calls.map((c) => {
      if ((c.args?.length ?? 0) > 6) throw new RangeError(`call ${c.nr}: at most 6 arguments`);
      return { nr: c.nr, args: (c.args ?? []).map((a) => BigInt.asUintN(64, a).toString()) };
    }),
    newListener: opts.newListener ?? false,
    noNewPrivs: opts.noNewPrivs ?? true,
  };
  const timeoutMs = scaled(opts.timeoutMs ?? 15000); // stretched in the VM lab (support/time-scale.ts)

  return new Promise<ProbeRun>((resolve) => {
    const child = spawn(process.execPath, [...PROBE_NODE_FLAGS, CHILD], {
      stdio: ["pipe", "ignore", "pipe", "pipe"],
    });
    const pid = child.pid ?? -1;
    const results: ProbeResult[] = [];
    let outcome: ProbeOutcome | undefined;
    let installError: ProbeRun["installError"];
    let childListenerFd: number | undefined;
    let localListener: number | undefined;
    let supervision: Promise<void> = Promise.resolve();
    let superviseError: unknown;
    let done = false;
    let killedByUs: "thread" | "timeout" | undefined;
    let stderr = "";
    let pending: Buffer = Buffer.alloc(0);

    child.stderr?.setEncoding("utf8");
    child.stderr?.on("data", (s: string) => (stderr += s));

    const onRecord = (r: Buffer): void => {
      const kind = r.readUInt32LE(0);
      const index = r.readInt32LE(4);
      const value = r.readBigInt64LE(8);
      const errno = r.readInt32LE(16);
      const trapped = r.readInt32LE(20);
      switch (kind) {
        case RECORD_HELLO:
          break;
        case RECORD_READY:
          if (spec.newListener) {
            childListenerFd = Number(value);
            if (opts.supervise) {
              try {
                const pidfd = pidfdOpen(pid);
                try {
                  localListener = pidfdGetFd(pidfd, childListenerFd);
                } finally {
                  close(pidfd);
                }
                const l = localListener;
                supervision = Promise.resolve()
                  .then(() => opts.supervise!(l, pid))
                  .catch((e: unknown) => {
                    superviseError = e;
                  });
              } catch (e) {
                superviseError = e;
              }
            }
          }
          break;
        case RECORD_INSTALL_FAILED:
          installError = { errno, code: errnoName(errno) };
          break;
        case RECORD_RESULT: {
          const nr = calls[index]?.nr ?? -1;
          if (trapped) {
            results.push({ index, nr, kind: "trapped", data: r.readInt32LE(24), trappedNr: r.readInt32LE(28), value });
          } else if (value === -1n && errno !== 0) {
            results.push({ index, nr, kind: "errno", errno, code: errnoName(errno) });
          } else {
            results.push({ index, nr, kind: "returned", value });
          }
          break;
        }
        case RECORD_DONE:
          done = true;
          break;
        default:
          stderr += `\n[kernel-probe] unknown record kind ${kind}`;
      }
    };

    const report = child.stdio[3] as NodeJS.ReadableStream;
    report.on("data", (chunk: Buffer) => {
      pending = pending.length ? Buffer.concat([pending, chunk]) : chunk;
      while (pending.length >= RECORD_SIZE) {
        onRecord(pending.subarray(0, RECORD_SIZE));
        pending = pending.subarray(RECORD_SIZE);
      }
    });

    // KILL_THREAD on the main thread leaves Node's helper threads running forever: watch for it.
    const watch = setInterval(() => {
      if (mainThreadGone(pid)) {
        killedByUs ??= "thread";
        child.kill("SIGKILL");
      }
    }, 50);
    const timer = setTimeout(() => {
      killedByUs ??= "timeout";
      child.kill("SIGKILL");
    }, timeoutMs);

    child.on("close", (code, signal) => {
      clearInterval(watch);
      clearTimeout(timer);
      if (signal === "SIGKILL" && killedByUs === "thread") outcome = "thread-killed";
      else if (signal === "SIGKILL" && killedByUs === "timeout") outcome = "timeout";
      else if (signal) outcome = "killed";
      else if (installError) outcome = "install-failed";
      else if (code === 0 && done && results.length === calls.length) outcome = "finished";
      else outcome = "incomplete";
      void supervision.finally(() => {
        if (localListener !== undefined) {
          try {
            close(localListener);
          } catch {
            // already closed by the supervisor
          }
        }
        resolve({
          pid,
          outcome: outcome!,
          results,
          signal,
          exitCode: code,
          installError,
          childListenerFd,
          superviseError,
          stderr,
        });
      });
    });

    child.stdin?.on("error", () => {
      // The child may die before reading all of its spec; the outcome says so.
    });
    child.stdin?.end(JSON.stringify(spec));
  });
}

/** Why filters cannot be loaded into probe processes here, or false (a test's `skip`). */
export function probeSkip(): string | false {
  const support = seccompSupport();
  return support.ok ? false : `seccomp unavailable: ${support.reason}`;
}

/** A syscall's number on the host's arch (the table's name must exist there). */
export function hostNr(name: string): number {
  const nr = syscallNumber(tableArch(), name);
  if (nr === undefined) throw new Error(`no syscall "${name}" on ${tableArch()}`);
  return nr;
}

/** A probe result for an assertion message (bigints as decimals). */
export function showProbe(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) => (typeof x === "bigint" ? String(x) : x));
}
