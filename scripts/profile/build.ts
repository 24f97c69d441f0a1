// Builds a starter profile from learning runs, re-runnably:
//   node dist/scripts/profile/build.js [--major 17 | --bin /usr/lib/postgresql/15/bin] [--out profiles/postgresql-15-x86_64.conf]
//                                      [--tracer learn|strace]
// --major finds the server as the tests do (Debian's, else the embedded build in node_modules).
// --tracer strace observes with `strace -f -c` instead of `pg_seccomp learn` (same rounds).
// For 18+ it also writes the -io_uring variant (variants.ts).
// Round 1 learns on a fresh cluster (settings: server.conf) under the floor policy (floor.conf)
// while workload.sh runs, with a streaming standby learned alongside; its last step is an
// immediate shutdown. Round 2 starts the same cluster again, so crash recovery is learned.
// The profile is the floor plus every syscall any process used in any round, in one global
// list (starter profiles stay global: per-context lists from short runs are too fragile to
// ship), default error, dangerous groups killed. Run as root.

import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createCluster, destroyCluster, findPgBinDir, postgresMajorVersion, waitReady } from "../../src/postgres/cluster.js";
import { loadPolicyFile } from "../../src/policy/policy.js";
import { hostArch, resolveSyscall } from "../../src/syscalls/index.js";
import { collate } from "../../src/render/effective-table.js";
import { profileServerConf } from "./server-conf.js";
import { ioUringVariant } from "./variants.js";

const here = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../scripts/profile");
const repo = resolve(here, "../..");
const bin = resolve(repo, "dist/src/cli/main.js");
const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const majorOpt = opt("--major");
if (majorOpt !== undefined && !/^\d+$/.test(majorOpt)) throw new Error(`--major: "${majorOpt}" is not a major version`);
const binDir = opt("--bin") ?? findPgBinDir(majorOpt === undefined ? undefined : Number(majorOpt));
const major = postgresMajorVersion(join(binDir, "postgres"));
const arch = hostArch();
const out = resolve(opt("--out") ?? join(repo, "profiles", `postgresql-${major}-${arch}.conf`));
const say = (s: string) => process.stderr.write(`build: ${s}\n`);
// How calls are observed: `pg_seccomp learn` over the floor (default), or `strace -f -c` of the
// server processes (no filter at all; the floor is added all the same).
const tracer = opt("--tracer") ?? "learn";
if (tracer !== "learn" && tracer !== "strace") throw new Error(`--tracer: "${tracer}" is not learn or strace`);

/** The syscall names of an `strace -c` summary (the last column of its table rows). */
function straceSummaryNames(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+(?:\s+\d+)?\s+([a-z0-9_]+)\s*$/.exec(line);
    if (m && m[1] !== "total") out.push(m[1]!);
  }
  return out;
}

const conf = profileServerConf(major);
const cluster = await createCluster({ binDir, conf });
try {
  appendFileSync(join(cluster.dataDir, "pg_hba.conf"), "local replication all trust\n");
  const work = join(cluster.root, "work");
  mkdirSync(work);
  chownSync(work, cluster.user.uid, cluster.user.gid);
  // The floor, where the server's user can read but not write it (not under the cluster's
  // directory, which belongs to the server's user).
  const policyDir = mkdtempSync(join(tmpdir(), "pg_seccomp-floor-"));
  chmodSync(policyDir, 0o755);
  const floor = join(policyDir, "floor.conf");
  copyFileSync(join(repo, "profiles", "floor.conf"), floor);
  chmodSync(floor, 0o644);
  chownSync(floor, 0, 0);
  const learned = [join(policyDir, "round1.conf"), join(policyDir, "round2.conf"), join(work, "standby.conf")];
  const postgres = [join(binDir, "postgres"), "-D", cluster.dataDir];
  const learn = (outFile: string, workload: string, merge?: string) => {
    const r = spawnSync(process.execPath, [bin, "learn", "-o", outFile, "--base", floor, ...(merge ? ["--merge", merge] : []), "--workload", workload, "--", ...postgres], {
      stdio: ["ignore", "inherit", "inherit"],
      env: {
        ...process.env, PGBIN: binDir, WORKDIR: work, SERVER_USER: cluster.user.name,
        STANDBY_LAUNCHER: `${process.execPath} ${bin} learn -o ${learned[2]} --base ${floor} --`,
      },
    });
    return r.status;
  };
  const round1 = `bash ${join(here, "workload.sh")} && kill -QUIT "$(head -1 ${cluster.dataDir}/postmaster.pid)"`;
  const round2 = `${join(binDir, "pgbench")} -c 2 -T 3 -S >/dev/null && ${join(binDir, "psql")} -X -c checkpoint`;
  const names = new Set<string>();
  if (tracer === "learn") {
    say(`round 1: the broad workload on PostgreSQL ${major}, ${arch} (every call the floor does not allow goes through the supervisor: slow)`);
    learn(learned[0]!, round1);
    say("round 2: restart after the immediate shutdown (crash recovery), a short workload");
    learn(learned[1]!, round2, learned[0]);
    for (const f of [floor, ...learned]) {
      if (!existsSync(f)) throw new Error(`${f} was not written: a learning round failed (see above); no profile written`);
      const p = loadPolicyFile(f);
      for (const e of p.global.entries) if (e.action.kind === "allow" && e.kind === "syscall" && e.conditions.length === 0) names.add(e.name);
    }
  } else {
    // strace -f -c: every syscall of every server process, counted, without a filter.
    const traced = [join(work, "round1.strace"), join(work, "round2.strace"), join(work, "standby.strace")];
    const env = {
      ...process.env, PGBIN: binDir, WORKDIR: work, SERVER_USER: cluster.user.name, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres",
      STANDBY_LAUNCHER: `strace -f -c -o ${traced[2]} --`,
    };
    const traceRound = async (outFile: string, workload: string, stopAfter: boolean) => {
      const server = spawn("strace", ["-f", "-c", "-o", outFile, "-u", cluster.user.name, ...postgres], { stdio: ["ignore", "inherit", "inherit"] });
      const exited = new Promise<number | null>((res) => server.on("exit", (code) => res(code)));
      let alive = true;
      void exited.then(() => (alive = false));
      await waitReady(cluster, () => alive, 120_000);
      const r = spawnSync("bash", ["-c", workload], { stdio: ["ignore", "inherit", "inherit"], env });
      if (r.status !== 0) throw new Error(`the workload failed (exit ${r.status}); no profile written`);
      if (stopAfter) spawnSync("bash", ["-c", `kill -INT "$(head -1 ${cluster.dataDir}/postmaster.pid)"`]);
      await exited;
    };
    say(`round 1: the broad workload on PostgreSQL ${major}, ${arch}, under strace -f`);
    await traceRound(traced[0]!, round1, false);
    say("round 2: restart after the immediate shutdown (crash recovery), a short workload");
    await traceRound(traced[1]!, round2, true);
    for (const n of loadPolicyFile(floor).global.entries) if (n.action.kind === "allow" && n.kind === "syscall" && n.conditions.length === 0) names.add(n.name);
    for (const f of traced) {
      if (!existsSync(f)) throw new Error(`${f} was not written: a round failed (see above); no profile written`);
      for (const name of straceSummaryNames(readFileSync(f, "utf8"))) {
        if (!resolveSyscall(arch, name).ok) throw new Error(`${f}: strace names "${name}", which this version does not know`);
        names.add(name);
      }
    }
  }
  const version = spawnSync(join(binDir, "postgres"), ["--version"], { encoding: "utf8" }).stdout.trim();
  const glibc = spawnSync("ldd", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim();
  const floorText = readFileSync(join(repo, "profiles", "floor.conf"), "utf8");
  const kill = /global_syscall_kill = '([^']*)'/.exec(floorText)![1];
  const harden = /syscall_harden = '([^']*)'/.exec(floorText)![1];
  const text = `# pg_seccomp starter profile: PostgreSQL ${major} on ${arch}.
#
# Built by scripts/profile/build.ts${tracer === "learn" ? "" : " --tracer strace"} on ${new Date().toISOString().slice(0, 10)}: ${version}; ${glibc};
# kernel ${spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim()}. Used by \`pg_seccomp run\` when no --policy is given and the server
# is PostgreSQL ${major} on ${arch}. docs/profiles.md says what the learning runs covered and how to
# regenerate this file for another system.
#
# Allowed: every syscall any process used while ${tracer === "learn" ? "learning (pg_seccomp learn over the floor)" : "traced (strace -f -c, --tracer strace)"}: scripts/profile/workload.sh on a
# primary and a streaming standby, then crash recovery; plus the floor (profiles/floor.conf:
# what glibc does on paths a test run rarely reaches). Everything else fails with EPERM and is
# written to the violation log; the dangerous groups are killed.

syscall_error_errno = 'EPERM'
global_syscall_default = 'error'

# Hardening presets (docs/policy.md, "Hardening presets"): no new namespaces (clone without
# namespace flags, clone3 ENOSYS so glibc falls back to clone, no unshare or setns), sockets only
# for AF_UNIX, AF_INET, AF_INET6 and NETLINK_ROUTE, personality locked, no setuid/setgid files,
# no TIOCSTI/TIOCLINUX. They apply on top of the lists here, in every process: the stricter
# answer wins. To leave one out, write e.g. 'all, !address_families'.
syscall_harden = '${harden}'

global_syscall_allow = '${[...names].sort(collate).join(", ")}'

# High-risk groups (the review asked that they be killable). Names in the allow list above win
# over group membership, so nothing PostgreSQL used is killed.
global_syscall_kill = '${kill}'
`;
  writeFileSync(out, text);
  say(`wrote ${out}: ${names.size} syscalls allowed`);
  if (major >= 18) {
    const variant = out.replace(/\.conf$/, "-io_uring.conf");
    writeFileSync(variant, ioUringVariant(text, major, arch));
    say(`wrote ${variant}: the same with io_uring (for io_method = io_uring)`);
  }
} finally {
  destroyCluster(cluster);
}
