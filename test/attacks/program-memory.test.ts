// Code in one server process against the memory of a program another runs: `execve` makes a
// process dumpable again, so a program a session with exec runs (COPY ... TO PROGRAM), or
// archive_command's, could be opened through /proc/<pid>/mem by a backend whose own context may
// not exec, and made to run that backend's code in the program's context.
// OPEN (found by attacking; the fix is a design change, not made here): the server is made
// non-dumpable before its first instruction, but every program it runs is dumpable again after
// its exec. Marked todo so that it runs and reports without failing the suite; see the report
// of branch attack2 for what a fix needs (prctl(PR_SET_DUMPABLE, 0) at each program's exec stop
// still leaves a window; Yama ptrace_scope >= 1 refuses a sibling's open).

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { repoPath } from "../support/paths.js";

const skip = integrationSkip();
const profile = readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8");

let cluster: Cluster;
let dir: string;
before(async () => {
  if (skip) return;
  cluster = await newCluster();
  dir = mkdtempSync(join(tmpdir(), "pg_seccomp-progmem-"));
  chmodSync(dir, 0o1777);
});
after(() => {
  if (cluster) destroyCluster(cluster);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test("a backend that may not exec cannot open the memory of a program another session runs", { skip, todo: skip ? undefined : "open: programs are dumpable after their exec" }, async () => {
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n")]);
  const pidFile = join(dir, "program.pid");
  try {
    query(cluster, "create role alice login in role pg_execute_server_program");
    const program = spawn(join(cluster.binDir, "psql"), ["-X", "-c", `copy (select 1) to program 'echo $$ > ${pidFile}; exec sleep 6'`], {
      env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "alice", PGDATABASE: "postgres" },
      stdio: "ignore",
    });
    const ended = new Promise<void>((r) => program.on("exit", () => r()));
    await waitFor(() => existsSync(pidFile) && /^\d+\n/.test(readFileSync(pidFile, "utf8")), 10_000, "alice's program");
    const pid = Number(readFileSync(pidFile, "utf8"));
    await waitFor(() => /sleep/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8")), 5000, "the program's exec");
    // The superuser's session may not exec; it reads the program's memory file (4096: unmapped,
    // so an open that succeeds fails the read with EIO instead).
    const r = psql(cluster, `select pg_read_binary_file('/proc/${pid}/mem', 4096, 1)`);
    assert.equal(r.ok, false);
    assert.match(r.stderr, /Permission denied/, `the open itself must be refused: ${r.stderr}`);
    await ended;
  } finally {
    await stop(s);
  }
});
