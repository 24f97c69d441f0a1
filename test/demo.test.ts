// The README's first command: `pg_seccomp demo` on this machine, as CI runs it.

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { BIN, integrationSkip } from "./support/server.js";

test("pg_seccomp demo starts a filtered server, runs the workload, shows the filter, stops and cleans up", { skip: integrationSkip() }, () => {
  const r = spawnSync(process.execPath, [BIN, "demo", "--seconds", "1"], { encoding: "utf8", timeout: 180_000 });
  assert.equal(r.status, 0, r.stderr);
  for (const step of ["[1/5]", "[2/5]", "[3/5]", "[4/5]", "[5/5]"]) assert.ok(r.stderr.includes(step), step);
  assert.doesNotMatch(r.stderr, /FAIL/);
  assert.match(r.stderr, /ok {3}COPY \.\.\. TO PROGRAM/);
  // psql centres a header narrower than its column (preset rows with conditions widen it).
  assert.match(r.stdout, /syscall\s+\| syscallnum \|\s+filter_action\s+\| context/);
  assert.match(r.stdout, / <default>\s+\|\s+-1 \| global->error\s+\| global/);
  assert.match(r.stdout, / mount\s+\|\s+165 \| global->error/, "a reachable mount is denied by name (EPERM), not killed");
  assert.match(r.stdout, / kexec_load\s+\|\s+246 \| global->kill/, "an unreachable call of a killed group is killed");
  assert.match(r.stdout, /pid \d+ \(postmaster\): filter matches the policy/, "the live status");
  assert.match(r.stdout, /\| checkpointer\s+\| yes\s+\| filter/);
  assert.match(r.stderr, /server exited with code 0; 0 call\(s\) went to the violation log/);
  const removed = /removed (\S+)/.exec(r.stderr)?.[1];
  assert.ok(removed && !existsSync(removed), "the cluster directory is gone");
});
