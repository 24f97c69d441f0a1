// Code in one server process against the memory of a program another runs: `execve` makes a
// process dumpable again, so a program a session with exec runs (COPY ... TO PROGRAM), or
// archive_command's, could be opened through /proc/<pid>/mem by a backend whose own context may
// not exec, and made to run that backend's code in the program's context.
// What holds it: Yama's relational ptrace (kernel.yama.ptrace_scope >= 1), under which only an
// ancestor may open a process's memory; docs/deploy.md, "Kernel settings", says to set it, and
// `run` notes its absence when the policy's contexts differ. Without Yama, or at 0 (Debian's
// default), it is open (todo): prctl(PR_SET_DUMPABLE, 0) at each program's exec stop would still
// leave a window between the kernel's reset and the stop (see the report of branch attack2).
// The second test sets ptrace_scope to 1 for its run where the kernel has Yama (the lab's Debian
// kernels; this machine's has none: skipped) and puts it back.

import { test, after, before } from "node:test";
import assert from "node:assert/strict";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { spawn } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { destroyCluster, psql, query, type Cluster } from "../../src/postgres/cluster.js";
import { integrationSkip, newCluster, startReady, stop, waitFor, writePolicy } from "../support/server.js";
import { readYamaPtraceScope } from "../../src/host/proc.js";
import { hostProfilePath } from "../support/paths.js";

const skip = integrationSkip();
const profile = readFileSync(hostProfilePath(), "utf8");

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

/**
 * Alice (who may exec) runs a program; the superuser's session, which may not, opens that
 * program's memory file. 4096 is unmapped, so an open that succeeds fails the read with EIO
 * instead: the open itself must be refused.
 */
async function attack(): Promise<{ refused: boolean; detail: string; launcher: string }> {
  const s = await startReady(cluster, ["--policy", writePolicy(profile + "\nsession_syscall_error = '*, execve'\nsession_syscall_allow.alice = '*, execve'\n")]);
  const pidFile = join(dir, "program.pid");
  rmSync(pidFile, { force: true });
  try {
    query(cluster, "do $$ begin if not exists (select from pg_roles where rolname = 'alice') then create role alice login in role pg_execute_server_program; end if; end $$");
    const program = spawn(join(cluster.binDir, "psql"), ["-X", "-c", `copy (select 1) to program 'echo $$ > ${pidFile}; exec sleep 6'`], {
      env: { ...process.env, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "alice", PGDATABASE: "postgres" },
      stdio: "ignore",
    });
    const ended = new Promise<void>((r) => program.on("exit", () => r()));
    await waitFor(() => existsSync(pidFile) && /^\d+\n/.test(readFileSync(pidFile, "utf8")), 10_000, "alice's program");
    const pid = Number(readFileSync(pidFile, "utf8"));
    await waitFor(() => /sleep/.test(readFileSync(`/proc/${pid}/cmdline`, "utf8")), 5000, "the program's exec");
    const r = psql(cluster, `select pg_read_binary_file('/proc/${pid}/mem', 4096, 1)`);
    await ended;
    return { refused: !r.ok && /Permission denied/.test(r.stderr), detail: r.ok ? "the read succeeded" : r.stderr, launcher: s.stderr() };
  } finally {
    await stop(s);
  }
}

const hostScope = readYamaPtraceScope();
test("a backend that may not exec cannot open the memory of a program another session runs (this kernel's Yama setting)", {
  skip,
  todo: skip || (hostScope !== undefined && hostScope >= 1) ? undefined : `open without Yama's ptrace_scope >= 1 (${hostScope === undefined ? "this kernel has no Yama" : "ptrace_scope is 0"}): programs are dumpable after their exec`,
  timeout: 120_000,
}, async () => {
  const r = await attack();
  if (hostScope === undefined || hostScope === 0) {
    // What run says about it, before the attack's own verdict (todo here).
    assert.match(r.launcher, /pg_seccomp: note: .*(no Yama|ptrace_scope is 0).*set kernel\.yama\.ptrace_scope = 1/);
  } else {
    assert.doesNotMatch(r.launcher, /set kernel\.yama\.ptrace_scope = 1/);
  }
  assert.ok(r.refused, `the open itself must be refused: ${r.detail}`);
});

test("with kernel.yama.ptrace_scope = 1, a sibling backend's open of a program's memory is refused", {
  skip: skip || (hostScope === undefined ? "this kernel has no Yama (the lab's Debian kernels have it: docs/lab.md)" : process.getuid?.() !== 0 ? "needs root to set kernel.yama.ptrace_scope" : false),
  timeout: 120_000,
}, async () => {
  const scopeFile = "/proc/sys/kernel/yama/ptrace_scope";
  writeFileSync(scopeFile, "1\n");
  try {
    const r = await attack();
    assert.ok(r.refused, `the open itself must be refused: ${r.detail}`);
    assert.doesNotMatch(r.launcher, /set kernel\.yama\.ptrace_scope = 1/);
  } finally {
    writeFileSync(scopeFile, `${hostScope}\n`);
  }
});
