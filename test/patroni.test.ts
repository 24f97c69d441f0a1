// Patroni for real (docs/deploy.md, "Patroni"): Debian's Patroni with its built-in Raft DCS (no
// etcd), two nodes and a patroni_raft_controller witness on this machine, started as the postgres
// OS user through the wrapper exactly as the docs install it (their commands are read from the
// Markdown, with /usr/local/lib/pg_seccomp moved to a temporary directory). Bootstrap and a
// streaming replica, a switchover, a failover (the leader's Patroni and postmaster killed) and the
// old leader rejoining through pg_rewind: after each step every server process of every node
// runs under the policy, and nothing was denied.

import { test, after } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort, lookupUser, postmasterPid } from "../src/postgres/cluster.js";
import { BIN, integrationSkip, waitFor, writePolicy } from "./support/server.js";
import { repoPath } from "./support/paths.js";
import { blocksTestedBy } from "./support/doc-blocks.js";

const PG15 = "/usr/lib/postgresql/15/bin";
const hasPatroni = ["patroni", "patronictl", "patroni_raft_controller"].every((c) => spawnSync("which", [c]).status === 0);
const hasRaft = spawnSync("/usr/bin/python3", ["-c", "import pysyncobj"]).status === 0;
const skip = integrationSkip() || (!existsSync(`${PG15}/postgres`) ? "needs Debian's PostgreSQL 15" : !hasPatroni || !hasRaft ? "needs Debian's patroni and python3-pysyncobj (.ci/run installs them)" : false);

/** The fenced blocks of docs/deploy.md's "Patroni" section, by language. */
function patroniDocs(): { sh: string; yaml: string } {
  const blocks = blocksTestedBy("patroni");
  const block = (lang: string) => blocks.find((b) => b.lang === lang && b.section === "Patroni")?.body;
  const sh = block("sh");
  const yaml = block("yaml");
  assert.ok(sh && yaml, "docs/deploy.md's Patroni section has a sh and a yaml block");
  return { sh, yaml };
}

const root = mkdtempSync(join(tmpdir(), "pg_seccomp-patroni-"));
chmodSync(root, 0o755);
const procs: ChildProcess[] = [];
after(async () => {
  // Patroni stops its postgres on SIGTERM; whatever is left (a killed Patroni's server) goes by pid.
  const exited = procs.map((p) => (p.exitCode === null && p.signalCode === null ? new Promise((r) => p.once("exit", r)) : Promise.resolve()));
  for (const p of procs) p.kill("SIGTERM");
  await Promise.race([Promise.all(exited), new Promise((r) => setTimeout(r, 60_000))]);
  for (const p of procs) p.kill("SIGKILL");
  for (const n of ["n1", "n2"]) {
    const pid = postmasterPid(join(root, n, "data"));
    if (pid) try { process.kill(pid, "SIGKILL"); } catch { /* gone */ }
  }
  rmSync(root, { recursive: true, force: true });
});

test("Patroni (Debian's, Raft) through the documented bin_dir: bootstrap, replica, switchover, failover and rejoin, every server process filtered, nothing denied", { skip, timeout: 600_000 }, async (t) => {
  const pgUser = lookupUser("postgres");
  const docs = patroniDocs();
  // The install commands as the docs give them, under a temporary prefix; the wrapper installed
  // there first, as docs/deploy.md's "Install" does.
  const prefix = join(root, "lib");
  mkdirSync(prefix, { mode: 0o755 });
  copyFileSync(repoPath("contrib/pg_ctl/postgres-seccomp"), join(prefix, "postgres-seccomp"));
  chmodSync(join(prefix, "postgres-seccomp"), 0o755);
  const sh = docs.sh.replaceAll("/usr/local/lib/pg_seccomp", prefix);
  const inst = spawnSync("sh", ["-e", "-c", sh], { encoding: "utf8" });
  assert.equal(inst.status, 0, inst.stderr);
  const binDir = /bin_dir: (\S+)/.exec(docs.yaml)![1]!.replaceAll("/usr/local/lib/pg_seccomp", prefix);
  assert.ok(existsSync(join(binDir, "pg_ctl")), "bin_dir holds PostgreSQL's programs");

  const policy = writePolicy(readFileSync(repoPath("profiles/postgresql-15-x86_64.conf"), "utf8"), "patroni-15.conf");
  const [raft1, raft2, raft3, rest1, rest2, pg1, pg2] = await Promise.all(Array.from({ length: 7 }, () => freePort()));
  const raft = [raft1, raft2, raft3];
  const nodes = [
    { name: "node1", dir: join(root, "n1"), rest: rest1!, port: pg1! },
    { name: "node2", dir: join(root, "n2"), rest: rest2!, port: pg2! },
  ];
  const own = (p: string) => { mkdirSync(p, { recursive: true, mode: 0o700 }); chownSync(p, pgUser.uid, pgUser.gid); };
  nodes.forEach((n, i) => {
    own(n.dir);
    own(join(root, `raft${i + 1}`));
    const partners = raft.filter((_, j) => j !== i).map((p) => `'127.0.0.1:${p}'`).join(", ");
    writeFileSync(join(root, `${n.name}.yml`), [
      "scope: pgs", `name: ${n.name}`,
      `restapi: {listen: '127.0.0.1:${n.rest}', connect_address: '127.0.0.1:${n.rest}'}`,
      `raft: {data_dir: '${join(root, `raft${i + 1}`)}', self_addr: '127.0.0.1:${raft[i]}', partner_addrs: [${partners}]}`,
      "bootstrap:",
      "  dcs: {ttl: 10, loop_wait: 2, retry_timeout: 3, maximum_lag_on_failover: 1048576, postgresql: {use_pg_rewind: true}}",
      "  initdb: [{encoding: UTF8}, data-checksums]",
      "  pg_hba: ['local all all trust', 'host all all 127.0.0.1/32 trust', 'host replication all 127.0.0.1/32 trust']",
      "postgresql:",
      `  listen: '127.0.0.1:${n.port}'`, `  connect_address: '127.0.0.1:${n.port}'`,
      `  data_dir: '${join(n.dir, "data")}'`, `  pgpass: '${join(n.dir, "pgpass")}'`,
      `  bin_dir: '${binDir}'`,
      "  authentication: {superuser: {username: postgres, password: pw}, replication: {username: replicator, password: rpw}}",
      `  parameters: {unix_socket_directories: '${n.dir}'}`,
      "",
    ].join("\n"));
  });
  own(join(root, "raft3"));
  writeFileSync(join(root, "raft3.yml"), `raft: {data_dir: '${join(root, "raft3")}', self_addr: '127.0.0.1:${raft3}', partner_addrs: ['127.0.0.1:${raft1}', '127.0.0.1:${raft2}']}\n`);

  // As the postgres OS user, with the wrapper's variables in Patroni's environment.
  const asPostgres = (cmd: string[]) => {
    // spawn's uid/gid (not runuser): the pid is Patroni's own, so killing it is a crash.
    const env = { PATH: "/usr/bin:/bin", HOME: spawnSync("getent", ["passwd", "postgres"], { encoding: "utf8" }).stdout.split(":")[5] ?? root, LANG: "C.UTF-8", PG_SECCOMP: `${process.execPath} ${BIN}`, PG_SECCOMP_POLICY: policy };
    const p = spawn(cmd[0]!, cmd.slice(1), { cwd: root, env, uid: pgUser.uid, gid: pgUser.gid, stdio: ["ignore", "pipe", "pipe"] });
    let text = "";
    p.stdout!.on("data", (d: Buffer) => (text += d));
    p.stderr!.on("data", (d: Buffer) => (text += d));
    procs.push(p);
    return { proc: p, log: () => text };
  };
  const patroni = (i: number) => asPostgres(["patroni", join(root, `${nodes[i]!.name}.yml`)]);

  type Member = { Member: string; Role: string; State: string; TL?: number };
  const members = (): Member[] => {
    const r = spawnSync("patronictl", ["-c", join(root, "node1.yml"), "list", "-f", "json"], { encoding: "utf8", timeout: 20_000 });
    try { return r.status === 0 ? (JSON.parse(r.stdout) as Member[]) : []; } catch { return []; }
  };
  const roleOf = (name: string) => members().find((m) => m.Member === name);
  const healthy = (leader: string, replica: string) => () => {
    const l = roleOf(leader), r = roleOf(replica);
    return l?.Role === "Leader" && l.State === "running" && r?.Role === "Replica" && (r.State === "running" || r.State === "streaming");
  };

  /** Every server process of every running node under the policy, and nothing denied in its log. */
  const checkFiltered = (step: string, which = nodes) => {
    for (const n of which) {
      const data = join(n.dir, "data");
      const st = spawnSync(process.execPath, [BIN, "status", "-D", data, "--policy", policy, "--json"], { encoding: "utf8" });
      assert.equal(st.status, 0, `${step}: status of ${n.name}: ${st.stderr}${st.stdout}`);
      const rep = JSON.parse(st.stdout) as { ok: boolean; processes: Array<{ pid: number; seccomp?: unknown }> };
      assert.ok(rep.ok, `${step}: every process of ${n.name} filtered by the policy:\n${st.stdout}`);
      assert.ok(rep.processes.length >= 4, `${step}: ${n.name} has its server processes`);
      const lg = spawnSync(process.execPath, [BIN, "log", "-D", data, "--json"], { encoding: "utf8" });
      const text = lg.stdout.trim();
      const events = text === "" ? [] : text.startsWith("[") ? (JSON.parse(text) as Array<{ action: string; syscall: string }>) : text.split("\n").map((l) => JSON.parse(l) as { action: string; syscall: string });
      const denied = events.filter((e) => e.action !== "log");
      assert.deepEqual(denied, [], `${step}: nothing denied on ${n.name}`);
    }
    t.diagnostic(`${step}: ${which.map((n) => n.name).join(", ")} filtered, nothing denied`);
  };

  asPostgres(["patroni_raft_controller", join(root, "raft3.yml")]);
  const node1 = patroni(0);
  await waitFor(() => roleOf("node1")?.Role === "Leader" && roleOf("node1")?.State === "running", 180_000, `node1 bootstrapped and leading:\n${node1.log()}`);
  const node2 = patroni(1);
  await waitFor(healthy("node1", "node2"), 180_000, `node2 streaming from node1:\n${node2.log()}`);
  checkFiltered("bootstrap");

  const sw = spawnSync("patronictl", ["-c", join(root, "node1.yml"), "switchover", "--leader", "node1", "--candidate", "node2", "--force"], { encoding: "utf8", timeout: 120_000 });
  assert.equal(sw.status, 0, sw.stdout + sw.stderr);
  await waitFor(healthy("node2", "node1"), 180_000, `switchover to node2:\n${JSON.stringify(members())}`);
  checkFiltered("switchover");

  // Failover: the leader's Patroni and postmaster die at once (a crashed machine).
  const leaderPm = postmasterPid(join(nodes[1]!.dir, "data"))!;
  node2.proc.kill("SIGKILL");
  process.kill(leaderPm, "SIGKILL");
  await waitFor(() => roleOf("node1")?.Role === "Leader" && roleOf("node1")?.State === "running", 180_000, `failover to node1:\n${JSON.stringify(members())}\n${node1.log().slice(-3000)}`);
  checkFiltered("failover", [nodes[0]!]);

  // The old leader comes back: Patroni rewinds it (pg_rewind; postgres --single through the
  // wrapper) and it follows node1.
  const node2b = patroni(1);
  await waitFor(healthy("node1", "node2"), 240_000, `node2 rejoined:\n${JSON.stringify(members())}\n${node2b.log().slice(-3000)}`);
  checkFiltered("rejoin");
});
