// The monitor's round trip (issue 16: classification should cost about one extra query): one
// question through src/supervisor/monitor.ts (its own protocol client, catalog check included; a
// named statement of the extended protocol, and, interleaved with it, the same as a simple query),
// beside the same question through a long-lived psql session (how the monitor worked before), and
// a plain `select 1` through the protocol client for scale. On a throwaway Debian 15 cluster, as
// the postgres OS user; the server is started directly (the monitor only needs the postmaster's
// pid and its socket).
//
//   npx tsc -p tsconfig.json && node dist/bench/monitor-bench.js      (as root)
//
// This is a benchmark: it never asserts timings. It fails only if something does not work.

import { spawn } from "node:child_process";
import { join } from "node:path";
import { createCluster, destroyCluster, postmasterPid, waitReady } from "../src/postgres/cluster.js";
import { MonitorConnection } from "../src/supervisor/monitor.js";

const N = Number(process.env.BENCH_MONITOR_N ?? 2000);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
}

async function main(): Promise<void> {
  const cluster = await createCluster();
  const server = spawn(join(cluster.binDir, "postgres"), ["-D", cluster.dataDir], { uid: cluster.user.uid, gid: cluster.user.gid, stdio: "ignore" });
  let alive = true;
  server.on("exit", () => (alive = false));
  try {
    await waitReady(cluster, () => alive, 60_000);
    const pm = postmasterPid(cluster.dataDir)!;
    const env = { PATH: "/usr/bin:/bin", PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres", PGDATABASE: "postgres" };
    // A backend to ask about: a sleeping psql.
    const sleeper = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-c", "select pg_sleep(600)"], { env, stdio: "ignore" });
    await new Promise((r) => setTimeout(r, 500));
    const target = sleeper.pid!; // psql's pid: not a backend; the row is "none" (the question costs the same)

    const user = { uid: cluster.user.uid, gid: cluster.user.gid, name: cluster.user.name };
    const monitor = new MonitorConnection({ postmasterPid: pm, user, idleCloseMs: 60_000 });
    // The same monitor sending the statement's whole text each time (simple query protocol).
    const simple = new MonitorConnection({ postmasterPid: pm, user, idleCloseMs: 60_000, protocol: "simple" });
    const ask: number[] = [];
    const askSimple: number[] = [];
    const first = performance.now();
    const a0 = await monitor.ask(target);
    const connectMs = performance.now() - first;
    if (a0.kind === "alarm" || a0.kind === "unknown") throw new Error(`the monitor did not answer: ${a0.why}`);
    await simple.ask(target);
    // Interleaved in blocks of 100, so that a busy moment of the machine falls on both alike.
    for (let i = 0; i < N; i += 100) {
      for (const [m, out] of [[monitor, ask], [simple, askSimple]] as const) {
        for (let k = 0; k < 100; k++) {
          const t = performance.now();
          const a = await m.ask(target);
          out.push(performance.now() - t);
          if (a.kind === "alarm" || a.kind === "unknown") throw new Error(`the monitor did not answer: ${a.why}`);
        }
      }
    }
    monitor.close();
    simple.close();

    // The old way: a psql session fed SQL and a marker, answers read as lines.
    const psql = spawn(join(cluster.binDir, "psql"), ["-X", "-q", "-A", "-t"], { env, uid: cluster.user.uid, gid: cluster.user.gid, stdio: ["pipe", "pipe", "ignore"] });
    psql.stdout!.setEncoding("utf8");
    let buf = "";
    let wake: (() => void) | undefined;
    psql.stdout!.on("data", (d: string) => {
      buf += d;
      wake?.();
    });
    const viaPsql = async (sql: string, tag: string) => {
      psql.stdin!.write(`${sql}\n\\echo ${tag}\n`);
      while (!buf.includes(tag + "\n")) await new Promise<void>((r) => (wake = r));
      buf = "";
    };
    const oldSql =
      "select pg_catalog.json_build_object('type', s.backend_type, 'role', a.rolname, 'database', d.datname)::text " +
      `from pg_catalog.pg_stat_get_activity(${target}) s left join pg_catalog.pg_authid a on a.oid OPERATOR(pg_catalog.=) s.usesysid ` +
      "left join pg_catalog.pg_database d on d.oid OPERATOR(pg_catalog.=) s.datid;";
    await viaPsql("select 1;", "warm");
    const old: number[] = [];
    for (let i = 0; i < N; i++) {
      const t = performance.now();
      await viaPsql(oldSql, `m${i}`);
      old.push(performance.now() - t);
    }
    psql.stdin!.end();
    sleeper.kill("SIGINT");

    const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(3)} ms, p95 ${quantile(xs, 0.95).toFixed(3)} ms`;
    process.stdout.write(
      `monitor round trips, ${N} each (PostgreSQL at ${cluster.binDir}):\n` +
        `  monitor.ask(pid), own protocol client, catalog check in the statement: ${fmt(ask)}\n` +
        `  the same, the statement's text sent each time (simple query protocol):  ${fmt(askSimple)}\n` +
        `  the same question through a long-lived psql session (before):            ${fmt(old)}\n` +
        `  first question after idle (connect + peer auth + kernel checks + query):  ${connectMs.toFixed(2)} ms\n`,
    );
  } finally {
    server.kill("SIGINT");
    await new Promise((r) => setTimeout(r, 1500));
    destroyCluster(cluster);
  }
}

main().catch((e) => {
  process.stderr.write(`monitor-bench: ${(e as Error).stack ?? e}\n`);
  process.exit(1);
});
