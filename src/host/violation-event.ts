// One record of the violation log: written by the launcher's supervisor (JSON lines), read by
// `pg_seccomp log`, seccomp.violations (in SQL), learn and verify. A file format shared across
// layers, so it lives below them all.

/** What the supervisor did: let it run (allow, log, the launch of postgres), failed it, failed it and ended the session (terminate), or killed. */
export type ViolationAction = "allow" | "log" | "launch" | "error" | "terminate" | "kill" | "trap";

/** One line of the violation log (JSON lines). */
export interface ViolationEvent {
  time: string;
  pid: number;
  /** The process title (`postgres: checkpointer`, `postgres: alice db [local] COPY`). */
  process: string;
  /** The context the supervisor decided for: postmaster, session, a backend type, unclassified. */
  context: string;
  /** For a program a server process exec'd: the server process whose context it has. */
  decidedBy?: number;
  role?: string;
  database?: string;
  /** The statement the session was running (from pg_stat_activity), when it could be had. */
  query?: string;
  /** Why the context is not the process's own (not classified yet, inconsistent facts). */
  note?: string;
  syscall: string;
  nr: number;
  args: string[];
  action: ViolationAction;
  errno?: number;
  signal?: string;
  /**
   * For a call the kernel recorded in a program a server process runs (archive_command's child,
   * a PL's system()): that program, as the kernel's record names it (exe=, else comm=).
   */
  program?: string;
  /** A summary record: how many records it stands for (kernel records not attributed, or calls of one process, syscall and action the rate limit held back). */
  count?: number;
  /** terminate: the process that got SIGTERM (the session's backend), when not the caller itself. */
  terminated?: number;
}
