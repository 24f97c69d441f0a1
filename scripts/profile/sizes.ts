// The sizes of the bundled profiles' lists, from the files themselves (docs/profiles.md's tables):
//   node dist/scripts/profile/sizes.js [DIR]        (DIR: another profiles directory, e.g. an older checkout's)
// Table 1, one row per profile:
//   allowed     global_syscall_allow; seen = calls observed at run time (the "seen [...]" evidence),
//               floor only = allowed because of the floor alone
//   logged      global_syscall_log; "of killed groups" = those that are members of a killed group
//               (reachable, so named: a name beats its group)
//   denied      global_syscall_error: named, with their errno (every call no list names gets the
//               default, EPERM, and is logged: "default" counts the arch's other calls)
//   killed      the members of the kill list's groups that no other list names: what the kernel kills
//   killed, reachable  of those, the ones static analysis finds (an evidence line says "static"): goal 0
//   withheld    reachable, gated features (io_uring, bpf, ptrace, ...), default error
//   static      the analysis's whole set; seen∩static / static is the precision of the static set
//               against what the runs observed; seen \ static is what the analysis missed
// Table 2, one row per killed call: its group and the profiles that kill it.
//   node dist/scripts/profile/sizes.js --policy FILE [--policy FILE ...] [--strace PROFILE]
// Table 1's counts for other policies (learned ones: the static set is not stated in them), and
// their recall against what strace saw of the broad workload: the calls a profile built by
// `build.js --tracer strace` has from its strace rounds (evidence [r1], [standby], [r2]): by
// default the bundled profile of the policy's major and arch, or PROFILE (a fresh
// `build.js --major N --tracer strace --out PROFILE`). Recall = the share of those calls the
// policy's global lists allow or log (not denied, not killed).

import { existsSync, readdirSync, readFileSync } from "node:fs";
import { basename, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { collate } from "../../src/render/effective-table.js";
import { policyArch, policyMajor, policySizes, recallAgainst, straceSeen, type PolicySizes } from "./profile-sizes.js";

const args = process.argv.slice(2);
const fail = (s: string): never => {
  process.stderr.write(`sizes: error: ${s}\n`);
  process.exit(1);
};
const policies: string[] = [];
let straceRef: string | undefined;
let dirArg: string | undefined;
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--policy") policies.push(resolve(args[++i] ?? fail("--policy needs a file")));
  else if (args[i] === "--strace") straceRef = resolve(args[++i] ?? fail("--strace needs a profile built with --tracer strace"));
  else if (dirArg === undefined && !args[i]!.startsWith("-")) dirArg = args[i];
  else fail(`unknown argument "${args[i]}"`);
}
const dir = dirArg ? resolve(dirArg) : resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../profiles");
const HEADER = [
  "| profile | allowed | seen | floor only | logged | logged, of killed groups | denied by name | denied by default | killed | killed, reachable | static, withheld | static set | seen ∩ static | seen not static | precision (seen ∩ static / static) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];
const row = (name: string, z: PolicySizes) =>
  `| ${name} | ${z.allowed.length} | ${z.seen.length} | ${z.allowed.length - z.seen.length} | ${z.logged.length} | ${z.loggedOfKilledGroups.length} | ${z.deniedByName.length} | ${z.deniedByDefault} | ${z.killed.length} | ${z.killedReachable.length} | ${z.withheld} | ` +
  (z.staticSet === undefined ? "— | — | — | — |" : `${z.staticSet} | ${z.seenStatic} | ${z.seen.length - z.seenStatic} | ${(z.seenStatic / z.staticSet).toFixed(2)} |`);

if (policies.length > 0) {
  const rows = [...HEADER];
  const recallRows = [
    "| policy | strace saw (broad workload) | allowed | logged | denied | killed | recall | not let run |",
    "|---|---|---|---|---|---|---|---|",
  ];
  for (const f of policies) {
    if (!existsSync(f)) fail(`${f}: no such file`);
    const text = readFileSync(f, "utf8");
    const arch = policyArch(basename(f), text) ?? fail(`${f}: no arch in its name or a "# arch:" line`);
    const z = policySizes(text, arch);
    if (z.contextLists.length > 0) process.stderr.write(`sizes: ${basename(f)} narrows contexts (${z.contextLists.join(", ")}): the counts are its global lists'\n`);
    rows.push(row(basename(f), z));
    const major = policyMajor(basename(f), text);
    const refFile = straceRef ?? (major === undefined ? fail(`${f}: no server major in it; give --strace PROFILE`) : resolve(dir, `postgresql-${major}-${arch}.conf`));
    const seen = existsSync(refFile) ? straceSeen(readFileSync(refFile, "utf8")) : undefined;
    if (!seen) fail(`${refFile}: not a profile built with --tracer strace (no [r1] round under strace -f -c)`);
    const r = recallAgainst(z, seen!);
    recallRows.push(
      `| ${basename(f)} (against ${basename(refFile)}) | ${r.reference} | ${r.allowed.length} | ${r.logged.length} | ${r.denied.length} | ${r.killed.length} | ${(100 * r.recall).toFixed(1)}% | ${[...r.denied, ...r.killed].join(", ") || "none"} |`,
    );
  }
  process.stdout.write(rows.join("\n") + "\n\n" + recallRows.join("\n") + "\n");
  process.exit(0);
}

const rows: string[] = [...HEADER];
const killedBy = new Map<string, { group: string; profiles: string[] }>();
for (const f of readdirSync(dir).filter((n) => /^postgresql-\d+-(x86_64|aarch64)(-io_uring)?\.conf$/.test(n)).sort(collate)) {
  const z = policySizes(readFileSync(resolve(dir, f), "utf8"), policyArch(f, "")!);
  rows.push(row(f, z));
  if (!f.includes("io_uring")) {
    for (const n of z.killed) {
      const k = killedBy.get(n) ?? { group: z.groupOf.get(n)!, profiles: [] };
      k.profiles.push(f.replace(/^postgresql-|\.conf$/g, ""));
      killedBy.set(n, k);
    }
  }
}
const killedRows = ["| killed call | group | killed by (the io_uring variants as their base) |", "|---|---|---|"];
const everyProfile = [...new Set([...killedBy.values()].flatMap((k) => k.profiles))];
const who = (ps: string[]) =>
  ps.length === everyProfile.length ? "all" : ps.every((p) => p.endsWith("x86_64")) && ps.length === everyProfile.filter((p) => p.endsWith("x86_64")).length ? "all x86_64" : ps.join(", ");
for (const [n, k] of [...killedBy].sort(([a], [b]) => collate(a, b))) killedRows.push(`| \`${n}\` | ${k.group} | ${who(k.profiles)} |`);
process.stdout.write(rows.join("\n") + "\n\n" + killedRows.join("\n") + "\n");
