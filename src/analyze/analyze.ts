// `pg_seccomp analyze`: the syscalls a postgres binary, every library it loads and the named
// extension modules can make, from the ELF files alone. Reads files; runs nothing.
//
// Combining the per-file scans (scan.ts):
// - Load order: the executable, then DT_NEEDED breadth first (resolve.ts), then each extension
//   module and its own DT_NEEDED. Imported names resolve to the first object in that order that
//   exports them (the loader's global scope; symbol versions are not distinguished).
// - Counted: every resolved syscall site in every loaded file. Indirect calls (function pointers,
//   PLT calls through dlsym, callbacks) are not followed; instead no site is left out because it
//   has no direct call path. Provenance says which is which: "call-path" when a chain of direct
//   calls leads from a function of the executable (or an extension module) to the site's
//   function, "no-direct-path" when none does (reachable through indirect calls only, or dead).
// - vDSO: clock_gettime, clock_getres, gettimeofday, time and getcpu are answered by the vDSO
//   without a syscall when the clock source allows; the vDSO falls back to the real syscall
//   otherwise (e.g. a clock source without vDSO support, CLOCK_*_ALARM, a VM's unstable TSC).
//   The vDSO is not on disk, so when a loaded library exports one of these functions (glibc
//   does), its syscall is added with rule "vdso-fallback".

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { basename, join } from "node:path";
import { hostArch, syscallName, syscallNumber, type Arch } from "../syscalls/index.js";
import { elfHeaderArch } from "./elf.js";
import { loadDisassembler, type Disassembler } from "./disasm.js";
import { PgSeccompError } from "../errors.js";
import { defaultLoaderEnv, defaultSysroot, findNeeded, resolveExtension, derivePkglibdir, type LoaderEnv, type Requester } from "./resolve.js";
import { analyzeElf, hex, IMPORT_WRAPPERS, SCAN_VERSION, type FileAnalysis } from "./scan.js";

/** A problem with the binaries or the invocation: the user fixes it. */
export class AnalyzeError extends PgSeccompError {
  constructor(message: string) {
    super("usage", message);
  }
}

export const DEFAULT_POSTGRES = "/usr/lib/postgresql/15/bin/postgres";

export const VDSO_FALLBACKS: Readonly<Record<string, string>> = {
  clock_gettime: "clock_gettime",
  clock_getres: "clock_getres",
  gettimeofday: "gettimeofday",
  time: "time",
  getcpu: "getcpu",
  sched_getcpu: "getcpu",
};

/** Calls the kernel has a process make, which no file holds a site for: name → why. */
export const KERNEL_ISSUED: Readonly<Record<Arch, ReadonlyArray<readonly [string, string]>>> = {
  x86_64: [["restart_syscall", "resumes a call a stop interrupted"]],
  aarch64: [["restart_syscall", "resumes a call a stop interrupted"], ["rt_sigreturn", "the vDSO's signal return trampoline"]],
};

export interface AnalyzeOptions {
  readonly postgres: string;
  readonly extensions?: readonly string[];
  /**
   * Programs the server runs (the executables of archive_command, restore_command,
   * archive_cleanup_command, COPY ... PROGRAM): a path, or a name looked up in PATH as the
   * shell would. Each is analyzed with its own libraries, as a root of its own.
   */
  readonly programs?: readonly string[];
  /** Expected architecture; the executable's own is used (and checked against this). */
  readonly arch?: Arch;
  /** Cache directory; undefined = no cache. */
  readonly cacheDir?: string;
  readonly loader?: LoaderEnv;
  /**
   * Where the target system's libraries are: "/" (none) for the host's arch; for another arch
   * Debian's cross libc root (/usr/aarch64-linux-gnu) when installed, unless given.
   */
  readonly sysroot?: string;
  readonly progress?: (msg: string) => void;
}

export interface BinaryInfo {
  readonly name: string;
  readonly path: string;
  readonly role: "executable" | "library" | "extension" | "program";
  readonly neededBy?: string;
  readonly how?: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly codeBytes: number;
  readonly sites: number;
  readonly cached: boolean;
}

export interface Via {
  readonly binary: string;
  readonly function: string;
  readonly address: string;
  /**
   * trap = a syscall/svc instruction; wrapper-call = a call passing the number to a wrapper;
   * vdso-fallback; kernel = a call the kernel makes the process issue (no site in any file).
   */
  readonly kind: "trap" | "wrapper-call" | "vdso-fallback" | "kernel";
  readonly callee?: string;
  readonly reach: "call-path" | "no-direct-path";
  /** From the executable (or an extension) to the site's function, "binary:function" per hop. */
  readonly path?: string[];
}

export interface SyscallFinding {
  readonly name: string;
  readonly number: number;
  readonly reach: "call-path" | "no-direct-path";
  /** Number of sites (all of them); `via` shows the first few, call paths first. */
  readonly sites: number;
  readonly via: Via[];
}

export interface Unresolved {
  readonly binary: string;
  readonly function: string;
  readonly address: string;
  readonly reason: string;
  /** Numbers found on the other paths to the same site (they are in `syscalls`). */
  readonly partial?: number[];
}

export interface AnalyzeResult {
  readonly arch: Arch;
  readonly binaries: BinaryInfo[];
  readonly missing: Array<{ name: string; neededBy: string; searched: string[] }>;
  readonly syscalls: SyscallFinding[];
  readonly unresolved: Unresolved[];
  readonly notes: string[];
  readonly stats: { files: number; codeBytes: number; seconds: number; cachedFiles: number; callPathSyscalls: number };
}

function hostArchOrUndefined(): Arch | undefined {
  try {
    return hostArch();
  } catch {
    return undefined;
  }
}

export const MAX_VIA = 5;
export const MAX_PATH_HOPS = 8;

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PG_SECCOMP_CACHE_DIR) return env.PG_SECCOMP_CACHE_DIR;
  const base = env.XDG_CACHE_HOME && env.XDG_CACHE_HOME.startsWith("/") ? env.XDG_CACHE_HOME : join(homedir(), ".cache");
  return join(base, "pg_seccomp");
}

function readCache(dir: string, sha: string): FileAnalysis | undefined {
  try {
    const v = JSON.parse(readFileSync(join(dir, "analyze", `${sha}.v${SCAN_VERSION}.json`), "utf8")) as FileAnalysis;
    return v && v.version === SCAN_VERSION && Array.isArray(v.sites) && Array.isArray(v.functions) ? v : undefined;
  } catch {
    return undefined;
  }
}

function writeCache(dir: string, sha: string, a: FileAnalysis): void {
  try {
    const d = join(dir, "analyze");
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const f = join(d, `${sha}.v${SCAN_VERSION}.json`);
    const tmp = `${f}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(a));
    renameSync(tmp, f);
  } catch {
    // A cache that cannot be written only costs time next run.
  }
}

interface Loaded {
  readonly info: Omit<BinaryInfo, "sites" | "codeBytes" | "cached">;
  readonly a: FileAnalysis;
  readonly cached: boolean;
}

export async function analyze(opts: AnalyzeOptions): Promise<AnalyzeResult> {
  const t0 = performance.now();
  const notes: string[] = [];
  let exeBuf: Buffer;
  try {
    exeBuf = readFileSync(opts.postgres);
  } catch (e) {
    throw new AnalyzeError(`${opts.postgres}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}; give the server binary with --postgres PATH`);
  }
  const h = elfHeaderArch(exeBuf);
  if ("error" in h) throw new AnalyzeError(`${opts.postgres}: ${h.error}`);
  const arch = h.arch;
  if (opts.arch && opts.arch !== arch) throw new AnalyzeError(`${opts.postgres} is an ${arch} binary, not ${opts.arch}; drop --arch or give the ${opts.arch} build`);
  if (opts.sysroot !== undefined && !(existsSync(opts.sysroot) && statSync(opts.sysroot).isDirectory())) {
    throw new AnalyzeError(`--sysroot ${opts.sysroot}: not a directory; give the target system's root (e.g. /usr/aarch64-linux-gnu from Debian's libc6-arm64-cross)`);
  }
  let loader = opts.loader;
  if (!loader) {
    const d = defaultLoaderEnv(arch, opts.sysroot ?? defaultSysroot(arch, hostArchOrUndefined()));
    if (d.note) notes.push(d.note);
    loader = d;
  }

  const dis = await loadDisassembler();
  const loaded: Loaded[] = [];
  const byPath = new Map<string, Loaded>();
  const missing: AnalyzeResult["missing"] = [];
  const total = { guess: 1 };

  const load = (path: string, buf: Buffer | undefined, info: Omit<Loaded["info"], "sha256" | "bytes">): Loaded | undefined => {
    const existing = byPath.get(path);
    if (existing) return existing;
    const data = buf ?? readFileSync(path);
    const sha = createHash("sha256").update(data).digest("hex");
    let a = opts.cacheDir ? readCache(opts.cacheDir, sha) : undefined;
    const cached = a !== undefined;
    opts.progress?.(`analyzing ${info.name} (${loaded.length + 1}/${Math.max(total.guess, loaded.length + 1)})${cached ? " [cached]" : ""}...`);
    if (!a) {
      a = analyzeElf(data, dis);
      if (opts.cacheDir) writeCache(opts.cacheDir, sha, a);
    }
    const l: Loaded = { info: { ...info, sha256: sha, bytes: data.length }, a, cached };
    loaded.push(l);
    byPath.set(path, l);
    return l;
  };

  // Breadth first, as the loader builds its search list.
  const loadTree = (root: Loaded, exeOf: Loaded = loaded[0]!) => {
    const exe = requesterOf(exeOf);
    const queue: Loaded[] = [root];
    while (queue.length > 0) {
      const cur = queue.shift()!;
      total.guess = Math.max(total.guess, loaded.length + queue.length + cur.a.needed.length);
      for (const name of cur.a.needed) {
        if (loaded.some((l) => l.info.name === name || l.a.soname === name)) continue;
        const r = findNeeded(name, requesterOf(cur), exe, loader!);
        if ("searched" in r) {
          if (!missing.some((m) => m.name === name)) missing.push({ name, neededBy: cur.info.name, searched: r.searched });
          continue;
        }
        const l = load(r.path, undefined, { name, path: r.path, role: "library", neededBy: cur.info.name, how: r.how });
        if (l) queue.push(l);
      }
    }
  };

  const exe = load(opts.postgres, exeBuf, { name: basename(opts.postgres), path: opts.postgres, role: "executable" })!;
  loadTree(exe);
  if ((opts.extensions ?? []).length > 0) {
    const pkglibdir = derivePkglibdir(opts.postgres);
    for (const spec of opts.extensions ?? []) {
      const r = resolveExtension(spec, pkglibdir);
      if ("error" in r) throw new AnalyzeError(r.error);
      const head = elfHeaderArch(readFileSync(r.path));
      if ("error" in head || head.arch !== arch) throw new AnalyzeError(`${r.path}: ${"error" in head ? head.error : `an ${head.arch} module, the server is ${arch}`}`);
      const l = load(r.path, undefined, { name: basename(r.path), path: r.path, role: "extension", how: "pkglibdir" });
      if (l) loadTree(l);
    }
  }
  for (const spec of opts.programs ?? []) {
    const path = programPath(spec);
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new AnalyzeError(`--program ${spec}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
    const head = elfHeaderArch(buf);
    if ("error" in head) throw new AnalyzeError(`--program ${spec}: ${path}: ${head.error} (give the executable the command runs, not a script)`);
    if (head.arch !== arch) throw new AnalyzeError(`--program ${spec}: ${path} is an ${head.arch} program, the server is ${arch}`);
    const l = load(path, buf, { name: basename(path), path, role: "program", how: spec === path ? "path" : "PATH" });
    if (l) loadTree(l, l);
  }
  for (const m of missing) notes.push(`${m.name} (needed by ${m.neededBy}) was not found: its syscalls are not in the result`);

  const result = combine(arch, loaded, notes);
  const codeBytes = loaded.reduce((s, l) => s + l.a.stats.codeBytes, 0);
  return {
    arch,
    binaries: loaded.map((l) => ({ ...l.info, codeBytes: l.a.stats.codeBytes, sites: l.a.sites.length, cached: l.cached })),
    missing,
    ...result,
    notes,
    stats: {
      files: loaded.length,
      codeBytes,
      seconds: Math.round((performance.now() - t0) / 10) / 100,
      cachedFiles: loaded.filter((l) => l.cached).length,
      callPathSyscalls: result.syscalls.filter((s) => s.reach === "call-path").length,
    },
  };
}

/** A program as the shell finds it: a name with a slash is a path, else the first executable file of that name in PATH. */
function programPath(spec: string, env: NodeJS.ProcessEnv = process.env): string {
  if (spec.includes("/")) return spec;
  for (const dir of (env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(":").filter((d) => d.startsWith("/"))) {
    const p = join(dir, spec);
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not in this directory
    }
  }
  throw new AnalyzeError(`--program ${spec}: not found in PATH; give its path`);
}

function requesterOf(l: Loaded): Requester {
  return { name: l.info.name, path: l.info.path, rpath: l.a.rpath, runpath: l.a.runpath };
}

/** Pure: the per-file scans of the loaded objects (in load order) → syscalls, provenance, unresolved. */
export function combine(
  arch: Arch,
  loaded: ReadonlyArray<{ info: { name: string; role: string }; a: FileAnalysis }>,
  notes: string[],
): { syscalls: SyscallFinding[]; unresolved: Unresolved[] } {
  const names = loaded.map((l) => new Map(l.a.names));
  const fnName = (i: number, fn: number) => names[i]!.get(fn) ?? `fn@${hex(fn)}`;
  const label = (i: number, fn: number) => `${loaded[i]!.info.name}:${fnName(i, fn)}`;

  // Global scope: first definition wins.
  const provider = new Map<string, { file: number; fn: number }>();
  loaded.forEach((l, i) => {
    for (const [name, fn] of l.a.exports) if (!provider.has(name)) provider.set(name, { file: i, fn });
  });

  // Adjacency per node "file:fn".
  const adj = new Map<string, string[]>();
  const push = (from: string, to: string) => {
    const list = adj.get(from);
    if (list) list.push(to);
    else adj.set(from, [to]);
  };
  loaded.forEach((l, i) => {
    for (const [from, to] of l.a.localEdges) push(`${i}:${from}`, `${i}:${to}`);
    for (const [from, name] of l.a.importEdges) {
      const p = provider.get(name);
      if (p) push(`${i}:${from}`, `${p.file}:${p.fn}`);
    }
  });

  // Breadth first from every function of the executable and of the extension modules.
  const parent = new Map<string, string | null>();
  const queue: string[] = [];
  loaded.forEach((l, i) => {
    if (l.info.role === "library") return;
    for (const fn of l.a.functions) {
      const k = `${i}:${fn}`;
      parent.set(k, null);
      queue.push(k);
    }
  });
  for (let q = 0; q < queue.length; q++) {
    const cur = queue[q]!;
    for (const next of adj.get(cur) ?? []) {
      if (parent.has(next)) continue;
      parent.set(next, cur);
      queue.push(next);
    }
  }
  const pathTo = (i: number, fn: number): string[] | undefined => {
    let k: string | null | undefined = `${i}:${fn}`;
    if (!parent.has(k)) return undefined;
    const hops: string[] = [];
    while (k) {
      const [f, a] = k.split(":");
      hops.push(label(Number(f), Number(a)));
      k = parent.get(k);
    }
    hops.reverse();
    return hops.length > MAX_PATH_HOPS ? [...hops.slice(0, 2), "...", ...hops.slice(-(MAX_PATH_HOPS - 3))] : hops;
  };

  const found = new Map<number, { via: Via[]; sites: number }>();
  const unresolved: Unresolved[] = [];
  const record = (nr: number, via: Via) => {
    let f = found.get(nr);
    if (!f) found.set(nr, (f = { via: [], sites: 0 }));
    f.sites++;
    f.via.push(via);
  };

  loaded.forEach((l, i) => {
    for (const s of l.a.sites) {
      const path = pathTo(i, s.fn);
      const base = {
        binary: l.info.name,
        function: fnName(i, s.fn),
        address: hex(s.addr),
        kind: s.kind,
        ...(s.callee ? { callee: s.callee } : {}),
        reach: path ? ("call-path" as const) : ("no-direct-path" as const),
        ...(path ? { path } : {}),
      };
      for (const nr of s.numbers) {
        if (syscallName(arch, nr) === undefined) {
          unresolved.push({ binary: l.info.name, function: base.function, address: base.address, reason: `number ${nr} is not an ${arch} syscall` });
          continue;
        }
        record(nr, base);
      }
      if (s.unknown.length > 0) {
        unresolved.push({
          binary: l.info.name,
          function: base.function,
          address: base.address,
          reason: s.unknown.join("; "),
          ...(s.numbers.length > 0 ? { partial: s.numbers } : {}),
        });
      }
    }
    for (const w of l.a.wrappers) {
      if (w.exported && w.name) {
        // Callers in other files: resolved for the names in IMPORT_WRAPPERS; any other importer is reported.
        if (IMPORT_WRAPPERS[w.name] === w.arg) continue;
        for (let j = 0; j < loaded.length; j++) {
          if (j !== i && loaded[j]!.a.importEdges.some(([, n]) => n === w.name) && provider.get(w.name)?.file === i) {
            unresolved.push({ binary: loaded[j]!.info.name, function: "(calls " + w.name + ")", address: "-", reason: `${l.info.name}:${w.name} takes the syscall number in argument ${w.arg + 1}; calls from other files to it are not followed` });
          }
        }
      } else if (w.callers === 0) {
        unresolved.push({ binary: l.info.name, function: fnName(i, w.fn), address: hex(w.fn), reason: `takes the syscall number in argument ${w.arg + 1}; no direct caller found (called indirectly)` });
      }
    }
  });

  // vDSO fallbacks of the clock functions.
  for (const [fname, sc] of Object.entries(VDSO_FALLBACKS)) {
    const p = provider.get(fname);
    const nr = syscallNumber(arch, sc);
    if (!p || nr === undefined) continue;
    const path = pathTo(p.file, p.fn);
    record(nr, {
      binary: loaded[p.file]!.info.name,
      function: fname,
      address: hex(p.fn),
      kind: "vdso-fallback",
      reach: path ? "call-path" : "no-direct-path",
      ...(path ? { path } : {}),
    });
  }

  // Calls no file holds: the kernel has the process make them. restart_syscall resumes a call a
  // stop (SIGSTOP, a debugger) interrupted; on aarch64 a signal handler returns through the
  // vDSO's rt_sigreturn trampoline (glibc sets no SA_RESTORER there).
  for (const [sc, why] of KERNEL_ISSUED[arch]) {
    const nr = syscallNumber(arch, sc);
    if (nr === undefined || (sc === "rt_sigreturn" && !provider.has("sigaction"))) continue;
    record(nr, { binary: "(kernel)", function: why, address: "-", kind: "kernel", reach: "call-path" });
  }

  const syscalls: SyscallFinding[] = [...found]
    .sort((a, b) => a[0] - b[0])
    .map(([nr, f]) => {
      const via = [...f.via].sort((a, b) => (a.reach === b.reach ? (a.path?.length ?? 99) - (b.path?.length ?? 99) : a.reach === "call-path" ? -1 : 1));
      return { name: syscallName(arch, nr)!, number: nr, reach: via[0]!.reach, sites: f.sites, via: via.slice(0, MAX_VIA) };
    });
  if (unresolved.length > 0) notes.push(`${unresolved.length} site(s) with a syscall number that could not be resolved: see "unresolved"`);
  return { syscalls, unresolved };
}
