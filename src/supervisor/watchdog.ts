// Fail closed when the launcher itself cannot act. Calls the filter hands to the supervisor wait
// in the kernel until it answers; a launcher that is stopped (SIGSTOP, a debugger) would leave
// them waiting for ever, and signals do not help (the waiting call restarts after a handler).
// A launcher that dies is covered by the kernel (waiting calls fail, the postmaster gets its
// parent-death signal); a stopped one needs someone else: this watchdog, a tiny shell process
// started by the launcher, which kills every server process when the launcher has been stopped
// for a few seconds. Every committed transaction survives (WAL recovery at the next start).
//
// Its limit, honestly: whoever can stop the launcher can stop the watchdog too (root, or the
// server's user when the launcher runs as that user); it guards against the stuck and the
// accidentally stopped, and against nothing that runs as root.

import { spawn } from "node:child_process";
import { readChildren, readStartTime } from "../host/proc.js";

/** Seconds a stopped launcher is tolerated. */
export const WATCHDOG_STOPPED_SECONDS = 3;

// $1 launcher pid, $2 postmaster pid, $3 seconds, $4 1 to guard the launcher's death, $5 the
// postmaster's start time. The postmaster's pid cannot be reused while the launcher has not
// reaped it (a stopped launcher reaps nothing); when the postmaster is not the launcher's child
// (postgres exec'd in place), its start time tells it apart from a later process.
const SCRIPT = `
L=$1 PM=$2 LIMIT=$3 GUARD=$4 PMSTART=$5 stopped=0
tree() { echo "$1"; for t in /proc/"$1"/task/*; do for c in $(cat "$t"/children 2>/dev/null); do tree "$c"; done; done; }
pm_alive() { read -r s 2>/dev/null < /proc/"$PM"/stat || return 1; s=\${s##*) }; set -- $s; [ "\${20}" = "$PMSTART" ]; }
killall_server() { kill -STOP "$PM" 2>/dev/null; kill -KILL $(tree "$PM") 2>/dev/null; }
while sleep 1; do
  read -r me < /proc/$$/stat || exit 0
  me=\${me##*) }; set -- $me
  if [ "$2" != "$L" ]; then
    # The launcher is gone. With postgres exec'd in place nothing else would stop the server:
    # calls it routes now fail with ENOSYS; stop it (immediate shutdown), then kill what is left.
    if [ "$GUARD" = 1 ] && pm_alive; then
      echo "pg_seccomp watchdog: the supervisor (pid $L) is gone; stopping the server (fail closed)" >&2
      kill -QUIT "$PM" 2>/dev/null
      sleep 5
      pm_alive && killall_server
    fi
    exit 0
  fi
  read -r st < /proc/"$L"/stat || exit 0
  st=\${st##*) }; st=\${st%% *}
  case "$st" in T|t) stopped=$((stopped + 1)) ;; *) stopped=0 ;; esac
  if [ "$stopped" -ge "$LIMIT" ]; then
    echo "pg_seccomp watchdog: the launcher (pid $L) has been stopped for $LIMIT s; killing the server (fail closed)" >&2
    killall_server
    exit 1
  fi
done
`;

export interface WatchdogOptions {
  /** Also stop the server when the launcher disappears (postgres exec'd in place: no parent-death signal). */
  guardLauncherDeath?: boolean;
  seconds?: number;
}

export function startWatchdog(launcherPid: number, postmasterPid: number, say: (line: string) => void, opts: WatchdogOptions = {}): { stop(): void } {
  const pmStart = readStartTime(postmasterPid) ?? ""; // "": gone, nothing to guard
  const args = [String(launcherPid), String(postmasterPid), String(opts.seconds ?? WATCHDOG_STOPPED_SECONDS), opts.guardLauncherDeath ? "1" : "0", pmStart];
  const p = spawn("/bin/sh", ["-c", SCRIPT, "pg_seccomp-watchdog", ...args], {
    stdio: ["ignore", "ignore", "inherit"],
    detached: false,
  });
  p.on("error", (e) => say(`pg_seccomp: warning: no watchdog (${e.message}): a stopped launcher would leave supervised calls waiting`));
  p.unref();
  return {
    stop() {
      if (p.exitCode === null) p.kill("SIGKILL");
    },
  };
}

/** Every process of the server: the postmaster and its descendants (stopped first, so it forks no more). */
export function serverTree(postmasterPid: number): number[] {
  const out: number[] = [];
  const walk = (pid: number, depth: number) => {
    out.push(pid);
    if (depth > 64) return;
    for (const c of readChildren(pid)) walk(c, depth + 1);
  };
  walk(postmasterPid, 0);
  return out;
}

/** SIGKILL for the whole server: nothing waits on a supervisor that will not answer. */
export function killServerTree(postmasterPid: number): void {
  try {
    process.kill(postmasterPid, "SIGSTOP");
  } catch {
    return;
  }
  for (const pid of serverTree(postmasterPid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* gone */
    }
  }
}
