// What a PostgreSQL process is, from its process title. PostgreSQL overwrites its argument area
// with a title ("postgres: checkpointer", "postgres: alice app [local] idle"); `status` shows it
// and the supervisor classifies processes by it (src/classify/classify.ts). Pure.

export interface ProcessTitle {
  /**
   * pg_stat_activity's backend_type names where PostgreSQL has one ("client backend",
   * "checkpointer", "autovacuum worker", "walsender", ...), plus "postmaster", "background
   * worker" for extensions' workers, and "other" for a process that is not a PostgreSQL one
   * (an archive_command shell, a COPY ... TO PROGRAM child).
   */
  backendType: string;
  /** The title (or command line, arguments joined by spaces) as read. */
  title: string;
  /** cluster_name, when the title carries one ("postgres: main: checkpointer"). */
  cluster?: string;
  /** Client backends and walsenders. */
  role?: string;
  database?: string;
  /** "[local]" or "host(port)". */
  client?: string;
  /** What the process title says the process is doing ("idle", "SELECT", "streaming 0/3000060", a database name...). */
  activity?: string;
  /** parallel worker: the leader's pid. */
  leaderPid?: number;
  /** background worker: its name (bgw_type); other: the program. */
  name?: string;
}

export const TITLE_PREFIX = "postgres: ";

/** Fixed titles: [title prefix (PostgreSQL 10+ and the older "... process" names), backend_type]. */
const FIXED_TITLES: ReadonlyArray<readonly [RegExp, string]> = [
  [/^checkpointer(?: process)?(?: (.*))?$/, "checkpointer"],
  [/^(?:background writer|writer process)(?: (.*))?$/, "background writer"],
  [/^(?:walwriter|wal writer process)(?: (.*))?$/, "walwriter"],
  [/^autovacuum launcher(?: process)?(?: (.*))?$/, "autovacuum launcher"],
  [/^autovacuum worker(?: process)?(?: (.*))?$/, "autovacuum worker"],
  [/^(?:bgworker: )?logical replication launcher(?: (.*))?$/, "logical replication launcher"],
  [/^(?:bgworker: )?(logical replication (?:[a-z]+ )*worker)(?: (.*))?$/, "logical replication worker"],
  [/^archiver(?: process)?(?: (.*))?$/, "archiver"],
  [/^startup(?: process)?(?: (.*))?$/, "startup"],
  [/^(?:walreceiver|wal receiver process)(?: (.*))?$/, "walreceiver"],
  [/^walsummarizer(?: (.*))?$/, "walsummarizer"],
  [/^stats collector(?: process)?(?: (.*))?$/, "stats collector"],
  [/^logger(?: process)?(?: (.*))?$/, "logger"],
  [/^slotsync worker(?: (.*))?$/, "slotsync worker"],
  [/^io worker(?: (.*))?$/, "io worker"],
];

function isClientHost(token: string | undefined): boolean {
  return token !== undefined && (token === "[local]" || /\(\d+\)$/.test(token));
}

/** Parse the part after "postgres: " (and after a cluster name); undefined if it is not a known shape. */
function parseTitleBody(body: string): Omit<ProcessTitle, "title"> | undefined {
  const t = body.split(" ");
  // Connections first, so that a role called "checkpointer" is still a client. A walsender's
  // title ("walsender ROLE [DATABASE] HOST(PORT)|[local] ACTIVITY...", no database for physical
  // replication) would read as a client of role "walsender", so it goes before clients.
  if (t[0] === "walsender") {
    const hostAt = isClientHost(t[2]) ? 2 : isClientHost(t[3]) ? 3 : -1;
    if (hostAt > 0) {
      const r: Omit<ProcessTitle, "title"> = { backendType: "walsender", role: t[1]!, client: t[hostAt]! };
      if (hostAt === 3) r.database = t[2]!;
      const activity = t.slice(hostAt + 1).join(" ");
      if (activity) r.activity = activity;
      return r;
    }
  }
  // client backend: "ROLE DATABASE HOST(PORT)|[local] ACTIVITY..." (no activity with update_process_title = off)
  if (isClientHost(t[2])) {
    const r: Omit<ProcessTitle, "title"> = { backendType: "client backend", role: t[0]!, database: t[1]!, client: t[2]! };
    const activity = t.slice(3).join(" ");
    if (activity) r.activity = activity;
    return r;
  }
  for (const [re, type] of FIXED_TITLES) {
    const m = re.exec(body);
    if (!m) continue;
    if (type === "logical replication worker") {
      // PostgreSQL 16+ distinguish apply, tablesync and parallel apply workers.
      const r: Omit<ProcessTitle, "title"> = { backendType: m[1]! };
      if (m[2]) r.activity = m[2];
      return r;
    }
    const r: Omit<ProcessTitle, "title"> = { backendType: type };
    if (m[1]) r.activity = m[1];
    return r;
  }
  const par = /^parallel worker for PID (\d+)(?: (.*))?$/.exec(body);
  if (par) {
    const r: Omit<ProcessTitle, "title"> = { backendType: "parallel worker", leaderPid: Number(par[1]) };
    if (par[2]) r.activity = par[2];
    return r;
  }
  const bgw = /^bgworker: (.*)$/.exec(body);
  if (bgw) return { backendType: "background worker", name: bgw[1]! };
  return undefined;
}

/**
 * What a process is, from /proc/PID/cmdline (NUL-separated, as read). PostgreSQL overwrites its
 * argument area with the title ("postgres: checkpointer", "postgres: alice app [local] idle",
 * padded with NULs); the postmaster keeps its command line (`postmaster: true` says this is it).
 * Role names with spaces make a client title ambiguous; they are read as far as they can be.
 */
export function parseProcessTitle(cmdline: string, opts: { postmaster?: boolean } = {}): ProcessTitle {
  const args = cmdline.split("\0");
  while (args.length > 0 && args[args.length - 1] === "") args.pop();
  const first = (args[0] ?? "").replace(/[\s\0]+$/, "");
  if (opts.postmaster) return { backendType: "postmaster", title: args.join(" ") };
  if (!first.startsWith(TITLE_PREFIX)) {
    const title = args.join(" ");
    const prog = (args[0] ?? "").split("/").pop() ?? "";
    // A child forked a moment ago has not set its title yet: it still shows the postmaster's command.
    if (prog === "postgres" || prog === "postmaster") return { backendType: "postgres (no title yet)", title, name: prog };
    return { backendType: "other", title, name: prog };
  }
  const body = first.slice(TITLE_PREFIX.length).trim();
  const direct = parseTitleBody(body);
  if (direct) return { title: first, ...direct };
  // cluster_name = 'main' gives "postgres: main: checkpointer".
  const c = /^(.+?): (.*)$/.exec(body);
  if (c) {
    const inner = parseTitleBody(c[2]!);
    if (inner) return { title: first, cluster: c[1]!, ...inner };
  }
  // Extensions' background workers are titled with their bgw_type ("pg_cron launcher").
  return { backendType: "background worker", title: first, name: body };
}
