// The tracer that makes the server non-dumpable from its first instruction (kernel/ptrace.ts,
// "Non-dumpable from the first instruction"): a process of its own, because the stage is the
// launcher's child and Node reaps its children with waitpid(), which would take the tracer's
// stops for an exit. Usage: undumpable.js <stage pid>. It seizes the stage, says "ready", waits
// for the stage's exec of postgres, makes it non-dumpable, says "ok" (or "error: ...") and exits.

import { writeSync } from "node:fs";
import { seizeUntilExec, undumpableAtExec } from "../kernel/index.js";
import { TIME_SCALE } from "../supervisor/time-scale.js";

/** How long the stage may take from "ready" to its exec (it waits for the supervisor to start). */
const EXEC_WAIT_MS = 120_000 * TIME_SCALE;
/**
 * How long each stop after the exec may take: the stage's injected prctl passes its filter (the
 * supervisor answers it when routed) and is single-stepped: scaled, like every wait of the
 * launcher, for emulation (the VM lab's TCG).
 */
const STEP_WAIT_MS = 5000 * TIME_SCALE;

function main(): number {
  const pid = Number(process.argv[2]);
  if (!Number.isInteger(pid) || pid <= 0) {
    writeSync(1, "error: no stage pid\n");
    return 2;
  }
  try {
    seizeUntilExec(pid);
    writeSync(1, "ready\n");
    undumpableAtExec(pid, EXEC_WAIT_MS, STEP_WAIT_MS);
    writeSync(1, "ok\n");
    return 0;
  } catch (e) {
    writeSync(1, `error: ${(e as Error).message.split("\n")[0]}\n`);
    return 1;
  }
}

process.exitCode = main();
