// `pg_seccomp demo`: the main job on a bundled default, on a fresh machine, with no arguments.
// A throwaway cluster starts under the starter profile, does some real work, shows what the
// kernel enforces, and stops; everything it created is removed.

import { join } from "node:path";
import { createCluster, destroyCluster, findPgBinDir, pgbench, postgresArgs, postmasterPid, psql, waitReady, type Cluster } from "../postgres/cluster.js";
import { loadPolicyFile } from "../policy/policy.js";
import { effectiveFilterRows, FILTER_COLUMNS, filterTableText } from "../render/effective-table.js";
import { psqlTable } from "../render/format.js";
import { hostArch } from "../syscalls/index.js";
import { preflight, runServer, type RunRequest, type RunResult } from "./run.js";
import { starterProfile } from "./profile-choice.js";

export interface DemoOptions {
  say: (line: string) => void;
  print: (text: string) => void;
  /** Extra status output, given the postmaster pid (the status command's renderer). */
  status?: (postmasterPid: number) => string;
  seconds?: number;
}

export async function runDemo(opts: DemoOptions): Promise<number> {
  const { say, print } = opts;
  const arch = hostArch();
  const binDir = findPgBinDir();
  const postgres = join(binDir, "postgres");
  const policyPath = starterProfile(postgres, arch);
  const policy = loadPolicyFile(policyPath);
  const root = process.getuid?.() === 0;

  say(`[1/5] creating a throwaway cluster (initdb${root ? " as the postgres user" : ""})`);
  const cluster: Cluster = await createCluster({ binDir, conf: ["logging_collector = on", "log_directory = 'log'"] });
  let server: Promise<RunResult> | undefined;
  try {
    say(`[2/5] starting PostgreSQL under ${policyPath}`);
    if (!root) say("      note: not root, so the server runs as you and the bundled profile belongs to you: the demo relaxes the permission check that `run` makes");
    const req: RunRequest = {
      policy, policyPath, arch, command: postgresArgs(cluster), specAllow: false,
      insecurePolicyPermissions: !root, say: (l) => say(`      ${l}`),
    };
    server = runServer(req, preflight(req));
    let exited = false;
    void server.then(() => (exited = true));
    await waitReady(cluster, () => !exited, 60_000);

    say(`[3/5] running a workload: pgbench -i, pgbench for ${opts.seconds ?? 5} s, COPY TO PROGRAM, VACUUM, CHECKPOINT`);
    const steps: Array<[string, () => { ok: boolean; stderr: string }]> = [
      ["pgbench -i -s 1", () => pgbench(cluster, ["-i", "-s", "1", "-q"])],
      [`pgbench -c 2 -T ${opts.seconds ?? 5}`, () => pgbench(cluster, ["-c", "2", "-j", "2", "-T", String(opts.seconds ?? 5)])],
      ["COPY ... TO PROGRAM", () => psql(cluster, "copy (select 1) to program 'cat > /dev/null'")],
      ["VACUUM ANALYZE", () => psql(cluster, "vacuum analyze")],
      ["CHECKPOINT", () => psql(cluster, "checkpoint")],
    ];
    let failed = 0;
    for (const [label, step] of steps) {
      const r = step();
      if (!r.ok) failed++;
      say(`      ${r.ok ? "ok  " : "FAIL"} ${label}${r.ok ? "" : `: ${r.stderr.trim().split("\n").pop()}`}`);
    }

    say("[4/5] the effective filter (as pg_get_seccomp_filter() shows it) and what the kernel holds");
    print(filterTableText(FILTER_COLUMNS, effectiveFilterRows(policy, arch, [{ context: "global" }])).replace(/\n$/, ""));
    const pid = postmasterPid(cluster.dataDir)!;
    if (opts.status) print(opts.status(pid));

    say("[5/5] stopping the server");
    process.kill(pid, "SIGINT");
    const result = await server;
    server = undefined;
    const denied = result.events.filter((e) => e.action !== "launch");
    say(`      server exited with code ${result.code}; ${denied.length} call(s) went to the violation log`);
    for (const e of denied.slice(0, 10)) say(`        ${e.syscall} (${e.action}) in ${e.process}`);
    return result.code === 0 && failed === 0 ? 0 : 1;
  } finally {
    if (server) {
      for (const sig of ["SIGINT", "SIGKILL"] as const) {
        const pid = postmasterPid(cluster.dataDir);
        if (pid === undefined) break;
        try {
          process.kill(pid, sig);
        } catch {
          /* already gone */
        }
      }
      await server.catch(() => undefined);
    }
    destroyCluster(cluster);
    say(`removed ${cluster.root}`);
  }
}
