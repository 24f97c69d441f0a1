// The supervisor as a process of its own, for `run --in-place`: the launcher execs postgres in
// its own pid (so pg_ctl -w, pg_ctlcluster, systemd and Patroni see the pid they started) and
// this process, started just before, takes the filter's listener and supervises.
//
// It is started twice over: the launcher spawns it with `--detach`; that copy starts the real
// supervisor in a new session (so it is nobody's child: postgres must not find an unknown child
// of its own, and a terminal's signals must not reach it), waits for its word that it is
// running, and exits; only then does the launcher install its filter and exec postgres.
// Fail closed without a parent-death signal: its watchdog stops the server if it disappears, the
// kernel fails the calls it would have answered (ENOSYS), and if it cannot take the listener it
// kills the waiting launcher.

import { spawn } from "node:child_process";
import { writeSync } from "node:fs";
import { loadPolicyFile } from "../policy/policy.js";
import { superviseServer, TIME_SCALE, type SupervisionRequest } from "../supervisor/supervision.js";
import { readLineFromFd } from "./stage.js";
import type { ViolationEvent } from "../host/violation-event.js";
import { errnoName } from "../syscalls/errno.js";
import { parseLogTargets, type LogTarget } from "../supervisor/log-sinks.js";
import { readStartTime } from "../host/proc.js";
import { setNotDumpable } from "../kernel/index.js";

/** The targets the launcher sent, checked again (the pipe is the launcher's, but be strict). */
function parseTargets(list: unknown): LogTarget[] {
  const t = Array.isArray(list) ? parseLogTargets(list.join(",")) : "not a list";
  if (typeof t === "string") throw new Error(`bad log targets: ${t}`);
  return t;
}

/** What the launcher sends: the parts of a SupervisionRequest that cross a pipe (the policy is read again). */
export type SuperviseInstructions = Pick<
  SupervisionRequest,
  "postmasterPid" | "policyPath" | "arch" | "user" | "userGids" | "dataDir" | "postgresPath" | "logPath" | "logMaxBytes" | "logTo"
>;

const FD = 3;


const say = (line: string) => process.stderr.write(line + "\n");

/** The first copy: start the real supervisor in its own session and relay its first word. */
async function detach(text: string): Promise<never> {
  const child = spawn(process.execPath, [new URL(import.meta.url).pathname], { detached: true, stdio: ["ignore", "inherit", "inherit", "pipe"] });
  const channel = child.stdio[3] as unknown as NodeJS.ReadWriteStream;
  channel.write(text);
  let answer = "";
  const ok = await new Promise<boolean>((res) => {
    const timer = setTimeout(() => res(false), 30_000 * TIME_SCALE);
    channel.on("data", (d: Buffer) => {
      answer += d.toString();
      if (answer.includes("\n")) {
        clearTimeout(timer);
        res(answer.startsWith("ok"));
      }
    });
    child.on("exit", () => {
      clearTimeout(timer);
      res(false);
    });
  });
  child.unref();
  (channel as unknown as { destroy(): void }).destroy();
  process.exit(ok ? 0 : 1);
}

function startTime(pid: number): string | undefined {
  return readStartTime(pid);
}

async function supervise(ins: SuperviseInstructions): Promise<never> {
  const pm = ins.postmasterPid;
  const pmStart = startTime(pm);
  const alive = () => pmStart !== undefined && startTime(pm) === pmStart;
  // The policy file is root's and was checked by the launcher a moment ago; read it again here
  // (the same file) rather than trusting a copy sent over a pipe.
  const policy = loadPolicyFile(ins.policyPath);
  const events: ViolationEvent[] = [];
  let supervision;
  try {
    supervision = await superviseServer({
      postmasterPid: pm, policy, policyPath: ins.policyPath, arch: ins.arch,
      ...(ins.user ? { user: ins.user, userGids: ins.userGids ?? [ins.user.gid] } : {}),
      ...(ins.dataDir ? { dataDir: ins.dataDir } : {}),
      postgresPath: ins.postgresPath,
      ...(ins.logPath ? { logPath: ins.logPath } : {}),
      ...(ins.logMaxBytes ? { logMaxBytes: ins.logMaxBytes } : {}),
      ...(ins.logTo ? { logTo: parseTargets(ins.logTo) } : {}),
      usesSupervisor: true,
      guardLauncherDeath: true,
      say,
      onEvent: (e) => {
        if (events.length < 1000) events.push(e);
      },
      alive,
      signal: (sig) => {
        if (alive()) process.kill(pm, sig);
      },
    });
  } catch (e) {
    say(`pg_seccomp: error: ${(e as Error).message}`);
    // The launcher waits in its execve for an answer that will not come: end it.
    if (alive()) process.kill(pm, "SIGKILL");
    process.exit(1);
  }
  // The supervisor has the listener: the exec of postgres is answered by it from here on.
  await Promise.race([
    supervision.workerDone,
    new Promise<void>((res) => {
      const t = setInterval(() => {
        if (!alive()) {
          clearInterval(t);
          res();
        }
      }, 500);
    }),
  ]);
  await supervision.finish();
  const denied = events.filter((e) => e.action === "error" || e.action === "terminate" || e.action === "kill" || e.action === "trap");
  if (denied.length > 0 && events.some((e) => e.pid === pm)) {
    const inPm = denied.filter((e) => e.pid === pm);
    for (const e of inPm.slice(0, 5)) say(`pg_seccomp: the policy denied ${e.syscall} (${e.action}${e.errno ? ` ${errnoName(e.errno)}` : ""}) in the postmaster`);
  }
  process.exit(supervision.failure() ? 1 : 0);
}

async function main(): Promise<void> {
  // Before anything is read: the server's user gets no /proc/PID/mem or ptrace of this process.
  setNotDumpable();
  const text = readLineFromFd(FD);
  if (process.argv.includes("--detach")) await detach(text);
  const ins = JSON.parse(text) as SuperviseInstructions;
  // Tell the first copy we are running; the listener is taken next (the launcher is about to
  // install its filter and exec, and waits in that exec until we answer it).
  writeSync(FD, "ok\n");
  await supervise(ins);
}

main().catch((e) => {
  say(`pg_seccomp: error: the supervisor failed: ${(e as Error).message}`);
  process.exit(1);
});
