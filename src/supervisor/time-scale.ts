// A module of its own: the tracer (launcher/undumpable.ts) reads it without loading the supervisor.

/**
 * PG_SECCOMP_TIME_SCALE (1 to 100; 1 when unset or not a number) in the launcher's environment
 * stretches the launcher's fail-closed limits (supervision.ts, the worker's main-thread watch, the monitor's connect and query timeouts, launcher/undumpable.ts), for a machine slow for a reason that is not
 * the server's: the VM lab runs under QEMU's TCG emulation, where starting a node thread takes
 * seconds (docs/lab.md). The environment is root's (whoever starts the launcher), never the
 * server's. A larger scale only delays a fail-closed stop; it never skips one.
 */
export function timeScale(env: NodeJS.ProcessEnv = process.env): number {
  const n = Number(env.PG_SECCOMP_TIME_SCALE ?? "1");
  return Number.isFinite(n) && n >= 1 ? Math.min(n, 100) : 1;
}
export const TIME_SCALE = timeScale();
