// Which policy `run` uses when none is given: the bundled profile of the server's major and arch,
// or one made on the spot from the installed binaries (analyzed-profile.ts). The one place that
// chooses; `learn` and `demo` ask it too.

import { existsSync, readdirSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Arch } from "../syscalls/index.js";
import { postgresMajorVersion, type OsUser } from "../postgres/cluster.js";
import { ensureRunStateDir } from "../host/run-state.js";
import { analyzedProfile } from "./analyzed-profile.js";
import { rootIoMethod } from "./server-features.js";
import { dataDirOf, groupsOf, LaunchError, serverUser } from "./run.js";

/** What a bundled profile was chosen for, and how it differs from the server. */
export interface ProfileChoice {
  path: string;
  /** The server's major version. */
  major: number;
  /** The profile's major (differs from `major` when none was bundled for it). */
  profileMajor: number;
  /** Said loudly when the profile is not the server's own. */
  note?: string;
  /** Made on the spot from the installed binaries (no bundled profile for this major or arch). */
  analyzed?: boolean;
}

/**
 * The bundled profile for a server: profiles/postgresql-<major>-<arch>.conf, for io_method =
 * io_uring its -io_uring variant (the same list plus io_uring_setup/enter/register). For a major
 * or arch without one, a profile made on the spot from the installed binaries (analyzed-profile.ts:
 * the nearest bundled major's seen calls ∪ floor ∪ static analysis), with a loud note; if the
 * analysis fails, the nearest bundled major of the arch, or a refusal when there is none. The one
 * place that chooses. PG_SECCOMP_PROFILES_DIR replaces the bundled directory (for tests: the
 * launcher's own environment, which only root sets).
 */
export function profileFor(postgres: string, arch: Arch, server: { dataDir?: string; user?: OsUser; args?: readonly string[] } = {}): ProfileChoice {
  const major = postgresMajorVersion(postgres);
  const dir = process.env.PG_SECCOMP_PROFILES_DIR ? `${resolve(process.env.PG_SECCOMP_PROFILES_DIR)}/` : new URL("../../../profiles/", import.meta.url).pathname;
  const names = existsSync(dir) ? readdirSync(dir).filter((n) => n.endsWith(".conf")) : [];
  const majors = names.map((n) => new RegExp(`^postgresql-(\\d+)-${arch}\\.conf$`).exec(n)).filter((m) => m !== null).map((m) => Number(m[1]));
  // Only what root controls chooses (server-features.ts, rootIoMethod): ALTER SYSTEM SET
  // io_method = 'io_uring' must not pick the io_uring profile at the next start.
  const me = { uid: process.getuid?.() ?? 0, gids: process.getgroups?.() ?? [], name: process.env.USER ?? "this user" };
  const identity = server.user ? { uid: server.user.uid, gids: [server.user.gid, ...groupsOf(server.user)], name: server.user.name } : me;
  const io = major >= 18 ? rootIoMethod(server.args ?? (server.dataDir ? ["-D", server.dataDir] : []), identity) : undefined;
  const nearest = majors.length > 0 ? nearestMajor(majors, major) : undefined;
  let failed = "";
  if (nearest !== major) {
    try {
      const made = analyzedProfile({
        postgres, arch, major, ...(nearest !== undefined ? { nearest: { path: `${dir}postgresql-${nearest}-${arch}.conf`, major: nearest } } : {}),
        ...(server.dataDir ? { dataDir: server.dataDir } : {}), ...(server.user ? { user: server.user } : {}), ioUring: io === "io_uring", outDir: join(ensureRunStateDir(), "profiles"),
      });
      return { path: made.path, major, profileMajor: nearest ?? major, note: made.note, analyzed: true };
    } catch (e) {
      if (nearest === undefined) {
        throw new LaunchError(
          `there is no starter profile for ${arch} (bundled: ${names.join(", ") || "none"}), and none could be made from the installed binaries: ${(e as Error).message.split("\n")[0]}\n` +
            `hint: learn one on a test server (pg_seccomp learn), or pass --policy FILE`,
        );
      }
      failed = ` Analyzing ${postgres} failed (${(e as Error).message.split("\n")[0]}).`;
    }
  }
  const profileMajor = nearest!;
  let note: string | undefined;
  if (profileMajor !== major) {
    note =
      `WARNING: there is no starter profile for PostgreSQL ${major} on ${arch}: using the one for PostgreSQL ${profileMajor} ` +
      `(postgresql-${profileMajor}-${arch}.conf).${failed} PostgreSQL ${major} may make calls PostgreSQL ${profileMajor} was never seen making; ` +
      `they fail with EPERM and are written to the violation log. Learn a profile for this server (pg_seccomp learn) or pass --policy FILE.`;
  }
  let path = `${dir}postgresql-${profileMajor}-${arch}.conf`;
  if (io === "io_uring") {
    const variant = `${dir}postgresql-${profileMajor}-${arch}-io_uring.conf`;
    if (existsSync(variant)) path = variant;
  }
  return { path, major, profileMajor, ...(note ? { note } : {}) };
}

/** The nearest of `majors` to `major`; between two equally near, the older. */
export function nearestMajor(majors: readonly number[], major: number): number {
  return [...majors].sort((a, b) => Math.abs(a - major) - Math.abs(b - major) || a - b)[0]!;
}

/** The bundled starter profile for the server (profileFor); a note about it goes to `say`. */
export function starterProfile(
  postgres: string, arch: Arch, server: { args?: readonly string[]; user?: string } = {}, say: (line: string) => void = (l) => process.stderr.write(`pg_seccomp: ${l}\n`),
): string {
  const dataDir = server.args ? dataDirOf(server.args) : undefined;
  let user: OsUser | undefined;
  try {
    user = serverUser(server.user);
  } catch {
    user = undefined; // preflight reports a bad --user
  }
  const choice = profileFor(postgres, arch, { ...(dataDir ? { dataDir } : {}), ...(user ? { user } : {}), ...(server.args ? { args: server.args } : {}) });
  if (choice.note) say(choice.note);
  return choice.path;
}
