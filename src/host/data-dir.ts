// Which data directory a server uses. PostgreSQL's -D may name the data directory itself or a
// configuration directory (Debian's /etc/postgresql/15/main, whose postgresql.conf sets
// data_directory); pg_seccomp keys its run state, its violation log and the set_client_filter
// spool by the real data directory. Also Debian's clusters by name (`--cluster 15/main`).
//
// What is read here (postgresql.conf, PG_VERSION, postgres -C) belongs to the server's user. The
// answer is only ever a path that the server itself will use as its data directory: it chooses
// where the spool goes (opened without following links and checked for ownership, client-filter.ts)
// and which log name is derived; nothing is parsed beyond one setting, bounded.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { UsageProblem } from "../errors.js";
import { readPostmasterPidFile, readServerFile } from "../host/server-files.js";

// The safe reader of the server's files lives in src/host; re-exported for the launcher's callers.
export { readServerFile };

export class DataDirError extends UsageProblem {
  override name = "UsageError";
}

/** A Debian/Ubuntu cluster (postgresql-common), as pg_lsclusters describes it. */
export interface DebianCluster {
  version: string;
  name: string;
  configDir: string;
  dataDir: string;
  ownerUid?: number;
  port?: number;
  socketDir?: string;
  logFile?: string;
}

const CLUSTER_SPEC = /^(\d+(?:\.\d+)?)[/-]([A-Za-z0-9_.][A-Za-z0-9_.-]*)$/;

/**
 * The value of one setting in a postgresql.conf text (the last one wins, as in PostgreSQL), or
 * undefined. Includes are not followed: Debian's data_directory is in the main file.
 */
export function confSetting(text: string, key: string): string | undefined {
  let found: string | undefined;
  const re = new RegExp(`^\\s*${key}\\s*(?:=\\s*|\\s+)('(?:[^'\\\\]|''|\\\\.)*'|[^\\s#']+)`, "i");
  for (const line of text.split("\n")) {
    const m = re.exec(line);
    if (!m) continue;
    const v = m[1]!;
    found = v.startsWith("'") ? v.slice(1, -1).replace(/''/g, "'").replace(/\\(.)/g, "$1") : v;
  }
  return found;
}

/** True when `dir` holds a PostgreSQL data directory (PG_VERSION). */
export function isDataDirectory(dir: string): boolean {
  return existsSync(join(dir, "PG_VERSION"));
}

/** The major version a data directory (PG_VERSION) or a Debian config directory (/etc/postgresql/V/N) belongs to. */
export function majorOf(dir: string): number | undefined {
  const v = readServerFile(join(dir, "PG_VERSION"), 64)?.trim();
  if (v && /^\d+$/.test(v)) return Number(v);
  const m = /^\/etc\/postgresql\/(\d+)\/[^/]+\/?$/.exec(resolve(dir));
  return m ? Number(m[1]) : undefined;
}

/**
 * For readers (`status`, `log`, `sql install`): -D as given, or the data directory its
 * postgresql.conf names when it is a configuration directory. No server is started.
 */
export function dataDirForLookup(dir: string): string {
  const abs = resolve(dir);
  if (isDataDirectory(abs)) return abs;
  const text = readServerFile(join(abs, "postgresql.conf"));
  const d = text === undefined ? undefined : confSetting(text, "data_directory");
  return d && isAbsolute(d) ? resolve(d) : abs;
}

/**
 * For `run`: the data directory postgres will use, given its arguments. A configuration
 * directory is asked with `postgres -C data_directory` (as the server's user: postgres refuses
 * root, and must read the files as the server will), so include files and -c options count.
 */
export function dataDirForRun(given: string, postgres: string, args: readonly string[], user?: { uid: number; gid: number }): { dataDir: string; configDir?: string } {
  const abs = resolve(given);
  if (isDataDirectory(abs)) return { dataDir: abs };
  if (!existsSync(join(abs, "postgresql.conf"))) return { dataDir: abs }; // postgres will say what is wrong
  // Only -c/--name=value options matter for -C; -D is replaced by the absolute path.
  const opts: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === "-c" && i + 1 < args.length) opts.push("-c", args[++i]!);
    else if (a.startsWith("-c") && a.length > 2) opts.push(a);
    else if (/^--[a-z_]+=/.test(a) && !a.startsWith("--pgdata")) opts.push(a);
  }
  const r = spawnSync(postgres, ["-C", "data_directory", "-D", abs, ...opts], {
    encoding: "utf8", maxBuffer: 64 * 1024, timeout: 30_000, cwd: "/",
    ...(user && process.getuid?.() === 0 ? { uid: user.uid, gid: user.gid } : {}),
  });
  const out = (r.stdout ?? "").trim();
  if (r.status !== 0 || out.includes("\n") || out.includes("\0")) {
    throw new DataDirError(
      `${abs} is a configuration directory, and asking postgres for its data_directory failed: ${(r.stderr || r.error?.message || "").trim()}\n` +
        `hint: give the data directory with -D, and the configuration with -c config_file=${join(abs, "postgresql.conf")}`,
    );
  }
  if (out === "") return { dataDir: abs };
  if (!isAbsolute(out)) throw new DataDirError(`${join(abs, "postgresql.conf")}: data_directory "${out}" is not an absolute path`);
  return { dataDir: resolve(out), configDir: abs };
}

/** Debian's clusters: pg_lsclusters --json, or /etc/postgresql/V/N when it is not there. */
export function debianClusters(etc = "/etc/postgresql"): DebianCluster[] {
  const r = spawnSync("pg_lsclusters", ["--json"], { encoding: "utf8", maxBuffer: 16 * 1024 * 1024, timeout: 30_000 });
  if (r.status === 0 && r.stdout) {
    try {
      const list = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
      return list.map((c) => ({
        version: String(c.version), name: String(c.cluster), configDir: String(c.configdir), dataDir: String(c.pgdata),
        ...(typeof c.owneruid === "number" ? { ownerUid: c.owneruid } : {}),
        ...(c.port !== undefined ? { port: Number(c.port) } : {}),
        ...(typeof c.socketdir === "string" ? { socketDir: c.socketdir } : {}),
        ...(typeof c.logfile === "string" ? { logFile: c.logfile } : {}),
      }));
    } catch {
      /* fall through to /etc */
    }
  }
  const out: DebianCluster[] = [];
  const dirs = (p: string) => {
    try {
      return readdirSync(p).filter((n) => statSync(join(p, n)).isDirectory());
    } catch {
      return [];
    }
  };
  for (const v of dirs(etc)) {
    for (const n of dirs(join(etc, v))) {
      const configDir = join(etc, v, n);
      const text = readServerFile(join(configDir, "postgresql.conf"));
      if (text === undefined) continue;
      const d = confSetting(text, "data_directory");
      const port = confSetting(text, "port");
      out.push({ version: v, name: n, configDir, dataDir: d && isAbsolute(d) ? d : `/var/lib/postgresql/${v}/${n}`, ...(port && /^\d+$/.test(port) ? { port: Number(port) } : {}) });
    }
  }
  return out;
}

/** `--cluster 15/main` (or 15-main): the Debian cluster, or a message naming the ones there are. */
export function findDebianCluster(spec: string, clusters: () => DebianCluster[] = () => debianClusters()): DebianCluster {
  const m = CLUSTER_SPEC.exec(spec);
  if (!m) throw new DataDirError(`--cluster ${spec}: give VERSION/NAME, e.g. --cluster 15/main`);
  const all = clusters();
  const c = all.find((x) => x.version === m[1] && x.name === m[2]);
  if (!c) {
    throw new DataDirError(
      `--cluster ${spec}: there is no such cluster (${all.length ? `there are: ${all.map((x) => `${x.version}/${x.name}`).join(", ")}` : "pg_lsclusters lists none"})\n` +
        `hint: pg_lsclusters lists them; pg_createcluster ${m[1]} ${m[2]} makes one`,
    );
  }
  return c;
}

/** The OS user name of a uid (getent), or the uid as a string. */
export function userNameOf(uid: number): string {
  const r = spawnSync("getent", ["passwd", String(uid)], { encoding: "utf8" });
  const name = r.status === 0 ? r.stdout.split(":")[0] : undefined;
  return name || String(uid);
}

/**
 * A running server's Unix socket, from postmaster.pid (line 4 the port, line 5 the first socket
 * directory). The file is the server's: the values only go to psql, run as the server's user.
 */
export function serverSocket(dataDir: string): { host: string; port: number } | undefined {
  const f = readPostmasterPidFile(dataDir);
  const port = Number(f?.port);
  const host = f?.socketDir;
  if (!host || !isAbsolute(host) || !Number.isInteger(port) || port <= 0 || port > 65535) return undefined;
  return { host, port };
}
