// The VM lab's command line (lab/run.sh): bad input gets one clear message and a non-zero exit
// before anything is built or booted. The lab itself runs with `npm run test:lab` (docs/lab.md),
// not here: it builds images and boots VMs for minutes.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { repoPath } from "./support/paths.js";

function lab(...args: string[]) {
  return spawnSync("bash", [repoPath("lab/run.sh"), ...args], { encoding: "utf8" });
}

test("lab/run.sh refuses a missing or unknown test set, an unknown kernel or arch, a kernel not built for the arch, and the systemd set with others, with error and hint", () => {
  for (const [args, message] of [
    [[], "no test set given"],
    [["nosuchset"], 'unknown test set "nosuchset"'],
    [["--kernel", "4.19", "agreement"], 'unknown kernel "4.19"'],
    [["--frobnicate"], 'unknown option "--frobnicate"'],
    [["systemd", "agreement"], "the systemd set runs alone"],
    [["--arch", "sparc64", "agreement"], 'unknown arch "sparc64"'],
    [["--arch", "aarch64", "--kernel", "5.10", "agreement"], "kernel 5.10 is not built for aarch64"],
  ] as const) {
    const r = lab(...args);
    assert.equal(r.status, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^pg_seccomp: error: ${message.replace(/[.]/g, "\\.")}\\npg_seccomp: hint: `), args.join(" "));
    assert.equal(r.stdout, "");
  }
});
