// Wall-clock limits of the real-server tests, stretched where the machine is slow for a reason
// that is not pg_seccomp's: the VM lab (lab/run.sh) runs them under QEMU's TCG emulation, where
// starting node or postgres takes seconds, and sets PG_SECCOMP_TIME_SCALE. The launcher the
// tests start inherits it and stretches its own fail-closed limits the same way
// (src/supervisor/supervision.ts, timeScale). On a normal machine the scale is 1.

import { timeScale } from "../../src/supervisor/time-scale.js";

/** The factor applied to the tests' limits. */
export const TIME_SCALE = timeScale();

/** `ms` stretched by TIME_SCALE. */
export function scaled(ms: number): number {
  return ms * TIME_SCALE;
}
