// A starter profile made on the spot, for a server no bundled profile was made for (another major,
// another arch): `run` analyzes the installed binaries (pg_seccomp analyze of its postgres, the
// libraries it loads, plpgsql and the modules of shared_preload_libraries) and composes
// (src/analyze/profile.ts) the nearest bundled major's seen calls ∪ the floor ∪ what the analysis
// finds. Reachable only statically: logged when there is a bundled major to take the seen calls
// from (they run; each call is written to the violation log); allowed when there is none at all
// for the arch (then nearly everything is "only static", and routing read/write through the
// supervisor to be logged would make the server unusably slow). The killed groups stay killed
// and gated features denied either way. Any failure refuses to start (fail closed).
//
// The analysis runs in a child process (our own CLI, `analyze --format json`): profileFor stays
// synchronous, and a parser fault in an ELF file ends that child, not the launcher.

import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { AnalyzeResult } from "../analyze/analyze.js";
import { derivePkglibdir } from "../analyze/resolve.js";
import { composeProfile, mapNames, parseFloor, parseSeenEvidence, settingList } from "../analyze/profile.js";
import { readFloor } from "../policy/bundled-lists.js";
import type { OsUser } from "../postgres/cluster.js";
import type { Arch } from "../syscalls/index.js";

const CLI = fileURLToPath(new URL("../cli/main.js", import.meta.url));
import { IO_URING_CALLS } from "./server-features.js";

export class AnalyzedProfileError extends Error {}

/**
 * shared_preload_libraries as plain module names (pkglibdir/NAME.so). postgres -C runs as the
 * server's user (it parses the server's hostile configuration unprivileged), 10 s at most, 4 KiB
 * of output; a value that is not a plain comma-separated list of names, or a path, is skipped
 * (the caller says so): those modules are then simply not analyzed.
 */
export function preloadModules(postgres: string, dataDir: string, user: OsUser | undefined): { modules: string[]; skipped: string[]; unreadable?: true } {
  const r = spawnSync(postgres, ["-C", "shared_preload_libraries", "-D", dataDir], {
    encoding: "utf8", timeout: 10_000, maxBuffer: 4096, stdio: ["ignore", "pipe", "pipe"],
    env: { PATH: "/usr/bin:/bin", LANG: "C" }, ...(user ? { uid: user.uid, gid: user.gid } : {}),
  });
  if (r.status !== 0 || r.error) return { modules: [], skipped: [], unreadable: true };
  return parsePreloadList(r.stdout);
}

/** A shared_preload_libraries value → plain module names, and the entries that are not (paths, odd text). */
export function parsePreloadList(value: string): { modules: string[]; skipped: string[] } {
  const modules: string[] = [];
  const skipped: string[] = [];
  for (const raw of value.trim().split(",")) {
    const v = raw.trim().replace(/^"(.*)"$/, "$1").replace(/^\$libdir\//, "");
    if (!v) continue;
    if (/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/.test(v)) modules.push(v.replace(/\.so$/, ""));
    // Shown in run's warning: the server's configuration is hostile text, so printable ASCII only.
    else skipped.push(v.slice(0, 64).replace(/[^\x20-\x7e]/g, "?"));
  }
  return { modules, skipped };
}

export interface AnalyzedProfile {
  path: string;
  /** Said loudly by run. */
  note: string;
}

/**
 * Analyzes the server's files and writes the composed profile to `outDir` (root's run-state
 * directory: the server's user cannot write there). `nearest` is the bundled profile whose seen
 * calls are taken (undefined: none for this arch).
 */
export interface ServerAnalysis {
  analysis: AnalyzeResult;
  /** The modules analyzed with postgres (plpgsql and shared_preload_libraries' plain names). */
  extensions: string[];
  pre: ReturnType<typeof preloadModules>;
}

/**
 * pg_seccomp analyze of a server's files (postgres, the libraries it loads, plpgsql and the
 * modules of shared_preload_libraries), in a child process. Throws AnalyzedProfileError with the
 * analysis' first error line when it fails. `run` (analyzedProfile) and `learn` use it.
 */
export function analyzeServerFiles(opts: { postgres: string; arch: Arch; dataDir?: string; user?: OsUser }): ServerAnalysis {
  const pkglibdir = derivePkglibdir(opts.postgres);
  const pre: ReturnType<typeof preloadModules> = opts.dataDir ? preloadModules(opts.postgres, opts.dataDir, opts.user) : { modules: [], skipped: [] };
  const extensions = [...new Set(["plpgsql", ...pre.modules])].filter((m) => pkglibdir && existsSync(join(pkglibdir, `${m}.so`)));
  const r = spawnSync(process.execPath, [CLI, "analyze", "--postgres", opts.postgres, "--arch", opts.arch, "--format", "json", ...extensions.flatMap((e) => ["--extension", e])], {
    encoding: "utf8", timeout: 180_000, maxBuffer: 64 * 1024 * 1024, stdio: ["ignore", "pipe", "pipe"],
  });
  if (r.status !== 0 || r.error) throw new AnalyzedProfileError(`analyzing ${opts.postgres} failed: ${(r.stderr || String(r.error ?? "")).trim().split("\n")[0]}`);
  return { analysis: JSON.parse(r.stdout) as AnalyzeResult, extensions, pre };
}

export function analyzedProfile(opts: {
  postgres: string; arch: Arch; major: number; nearest?: { path: string; major: number };
  dataDir?: string; user?: OsUser; ioUring?: boolean; outDir: string;
}): AnalyzedProfile {
  let analyzed: ServerAnalysis;
  try {
    analyzed = analyzeServerFiles(opts);
  } catch (e) {
    throw new AnalyzedProfileError(
      `there is no starter profile for PostgreSQL ${opts.major} on ${opts.arch}, and ${(e as Error).message}\nhint: learn one on a test server (pg_seccomp learn), or pass --policy FILE`,
    );
  }
  const { analysis, extensions, pre } = analyzed;

  const floor = parseFloor(readFloor());
  // The floor and the bundled profiles' seen calls are x86_64 names; aarch64 lacks some (stat, pipe...).
  const floorMap = mapNames(floor.allow, opts.arch);
  const floorNames = new Map<string, string>();
  for (const [to, froms] of floorMap.mapped) floorNames.set(to, floor.tagOf.get(froms[0]!)!);
  let learned = new Map<string, string[]>();
  let legend = new Map<string, string>();
  if (opts.nearest) {
    const text = readFileSync(opts.nearest.path, "utf8");
    const ev = parseSeenEvidence(text);
    if (ev.seen.size > 0) {
      learned = ev.seen;
      legend = ev.legend;
    } else {
      const tag = basename(opts.nearest.path, ".conf");
      for (const n of settingList(text, "global_syscall_allow") ?? []) if (!floorNames.has(n)) learned.set(n, [tag]);
      legend.set(tag, `in the allow list of the bundled ${basename(opts.nearest.path)}`);
    }
    const m = mapNames(learned.keys(), opts.arch);
    const mapped = new Map<string, string[]>();
    for (const [to, froms] of m.mapped) mapped.set(to, [...new Set(froms.flatMap((f) => learned.get(f) ?? []))]);
    learned = mapped;
  }
  const staticOnly = opts.nearest ? "log" : "allow";
  const header = [
    `pg_seccomp profile made by \`pg_seccomp run\`: PostgreSQL ${opts.major} on ${opts.arch}, which no bundled profile is for.`,
    `Seen calls: ${opts.nearest ? `those of the bundled postgresql-${opts.nearest.major}-${opts.arch}.conf (PostgreSQL ${opts.nearest.major})` : `none (no bundled profile for ${opts.arch})`}.`,
    `Static: pg_seccomp analyze of ${opts.postgres}${extensions.length ? ` and ${extensions.join(", ")}` : ""} (${analysis.syscalls.length} syscalls, ${analysis.binaries.length} files` +
      `${analysis.missing.length ? `; NOT FOUND: ${analysis.missing.map((x) => x.name).join(", ")}` : ""}${analysis.unresolved.length ? `; ${analysis.unresolved.length} unresolved sites` : ""}).`,
    `Reachable only statically: ${staticOnly === "log" ? "logged" : "allowed"}. Regenerated at every start; not a file to edit (copy it and pass --policy).`,
  ];
  const composed = composeProfile({
    arch: opts.arch, learned, learnedLegend: legend, floor: floorNames, floorReasons: floor.reasons,
    analysis, staticOnly, kill: floor.kill, harden: floor.harden, header,
  });
  let text = composed.text;
  if (opts.ioUring) {
    text = text.replace(/^global_syscall_allow = '([^']*)'$/m, (_all, list: string) => `global_syscall_allow = '${[...list.split(", "), ...IO_URING_CALLS].join(", ")}'`);
  }
  mkdirSync(opts.outDir, { recursive: true, mode: 0o755 });
  // Named by content: a server started with another input (its own preload modules, a newer
  // binary) never overwrites the file a running supervisor reads.
  const path = join(opts.outDir, `analyzed-postgresql-${opts.major}-${opts.arch}-${createHash("sha256").update(text).digest("hex").slice(0, 12)}.conf`);
  writeFileSync(`${path}.tmp`, text, { mode: 0o644 });
  renameSync(`${path}.tmp`, path);
  const c = composed.counts;
  const note =
    `WARNING: there is no starter profile for PostgreSQL ${opts.major} on ${opts.arch}: analyzed ${opts.postgres} on the spot ` +
    `(${analysis.binaries.length} files${extensions.length ? `, modules ${extensions.join(", ")}` : ""}) and made ${path}: ` +
    (opts.nearest
      ? `the calls seen for PostgreSQL ${opts.nearest.major} (postgresql-${opts.nearest.major}-${opts.arch}.conf) and the floor allowed (${composed.allow.length}), ` +
        `${c.staticOnly} more the analysis finds reachable LOGGED (they run, and each call is written to the violation log)`
      : `no profile for ${opts.arch} at all, so nothing was seen at run time: the floor and the ${c.staticOnly} calls the analysis finds reachable are ALLOWED`) +
    `; of the high-risk groups, ${c.groupLogged} reachable calls are logged and ${c.groupDenied} denied by name (the kernel refuses them to the server's user anyway), none killed. A call outside these fails with EPERM and is logged.` +
    (analysis.missing.length ? ` Libraries not found (their calls are not in it): ${analysis.missing.map((x) => x.name).join(", ")}.` : "") +
    (pre.skipped.length ? ` Not analyzed (shared_preload_libraries entries that are not plain module names): ${pre.skipped.join(", ")}.` : "") +
    (pre.unreadable ? " The server's shared_preload_libraries could not be read (postgres -C): its modules are not analyzed." : "") +
    ` Learn a profile for this server (pg_seccomp learn) or pass --policy FILE.`;
  return { path, note };
}
