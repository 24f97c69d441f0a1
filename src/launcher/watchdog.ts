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
import { readFileSync } from "node:fs";

/** Seconds a stopped launcher is tolerated. */
export const WATCHDOG_STOPPED_SECONDS = 3;

// $1 launcher pid, $2 postmaster pid, $3 seconds. Exits when the launcher is gone or is no
// longer its parent. The postmaster's pid cannot be reused while the launcher has not reaped
// it, and a stopped launcher reaps nothing.
const SCRIPT = `
L=$1 PM=$2 LIMIT=$3 stopped=0
tree() { echo "$1"; for t in /proc/"$1"/task/*; do for c in $(cat "$t"/children 2>/dev/null); do tree "$c"; done; done; }
while sleep 1; do
  read -r me < /proc/$$/stat || exit 0
  me=\${me##*) }; set -- $me; [ "$2" = "$L" ] || exit 0
  read -r st < /proc/"$L"/stat || exit 0
  st=\${st##*) }; st=\${st%% *}
  case "$st" in T|t) stopped=$((stopped + 1)) ;; *) stopped=0 ;; esac
  if [ "$stopped" -ge "$LIMIT" ]; then
    echo "pg_seccomp watchdog: the launcher (pid $L) has been stopped for $LIMIT s; killing the server (fail closed)" >&2
    kill -STOP "$PM" 2>/dev/null
    kill -KILL $(tree "$PM") 2>/dev/null
    exit 1
  fi
done
`;

export function startWatchdog(launcherPid: number, postmasterPid: number, say: (line: string) => void, seconds = WATCHDOG_STOPPED_SECONDS): { stop(): void } {
  const p = spawn("/bin/sh", ["-c", SCRIPT, "pg_seccomp-watchdog", String(launcherPid), String(postmasterPid), String(seconds)], {
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
    let tasks: string[] = [];
    try {
      tasks = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    } catch {
      /* gone */
    }
    for (const c of tasks) walk(Number(c), depth + 1);
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
