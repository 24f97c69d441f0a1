// Issue 17: nothing a healthy server or the programs it runs can reach is killed by a bundled
// profile. For every major (Debian's 15, the embedded 14, 16, 17 and 18), one cluster under its
// bundled profile as shipped (default error):
// - unix_socket_group set: the postmaster chowns its socket, and the server starts;
// - archive_command with each compressor in the form that writes a named file (and so keeps the
//   owner with fchown/chown): gzip -f, zstd -o, lz4, xz -f, bzip2 -f, and cp -p / cp -a, and on 15
//   pgBackRest's archive-push: one WAL switch archived by each, pg_stat_archiver.failed_count stays 0;
// - restore_command with each of them (zstd -d -o %p, ..., pgbackrest archive-get): a copy of the cluster taken before the
//   switches recovers from that archive under the profile and has every row;
// - dblink over TCP with a KEYRING: Kerberos credential cache (KRB5_CONFIG), gssencmode=disable
//   and the default (prefer: libpq asks GSSAPI for credentials, and Debian's libkrb5 reads the
//   kernel keyring with keyctl);
// - 15 with postgresql-plperl-15: chown in plperlu (owner unchanged).
// Nothing may be killed, and nothing denied: no error, trap or kill entry in the violation log.
// The workloads are test/support/kill-workloads.ts (test/learn-safe.test.ts runs them under
// learned policies too).
// 15 runs every compressor; the others run zstd, gzip and cp -a (the programs are the same
// binaries on every major; what differs per major is the profile, and chown/fchown is what they
// share) to keep the suite's time down.

import { test, describe } from "node:test";
import { readFileSync } from "node:fs";
import { integrationSkip } from "./support/server.js";
import { majors } from "./support/majors.js";
import { repoPath } from "./support/paths.js";
import { archiversFor, has, runKillWorkloads } from "./support/kill-workloads.js";

const skip = integrationSkip();

for (const m of majors()) {
  const full = m.major === 15;
  const names = [...archiversFor(full).map((a) => a.name), ...(full && has("pgbackrest") ? ["pgbackrest"] : [])];
  describe(`PostgreSQL ${m.major} under its bundled profile: nothing reachable is killed`, { skip: skip || m.skip }, () => {
    test(`unix_socket_group, archive and restore with ${names.join(", ")}, dblink with a KEYRING: cache${full ? ", plperlu chown" : ""}`, { timeout: 300_000 }, async () => {
      await runKillWorkloads({
        binDir: m.binDir!,
        major: m.major,
        policy: readFileSync(repoPath(`profiles/postgresql-${m.major}-x86_64.conf`), "utf8"),
        label: `kills-${m.major}`,
        full,
      });
    });
  });
}
