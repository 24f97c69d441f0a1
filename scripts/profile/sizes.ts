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

import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { settingList } from "../../src/analyze/profile.js";
import { expandGroup } from "../../src/syscalls/groups.js";
import { allSyscalls, type Arch } from "../../src/syscalls/index.js";
import { collate } from "../../src/render/effective-table.js";

const dir = process.argv[2] ? resolve(process.argv[2]) : resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../profiles");
const rows: string[] = [
  "| profile | allowed | seen | floor only | logged | logged, of killed groups | denied by name | denied by default | killed | killed, reachable | static, withheld | static set | seen ∩ static | seen not static | precision (seen ∩ static / static) |",
  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
];
const killedBy = new Map<string, { group: string; profiles: string[] }>();
for (const f of readdirSync(dir).filter((n) => /^postgresql-\d+-(x86_64|aarch64)(-io_uring)?\.conf$/.test(n)).sort(collate)) {
  const arch = /-(x86_64|aarch64)/.exec(f)![1] as Arch;
  const text = readFileSync(resolve(dir, f), "utf8");
  const allow = settingList(text, "global_syscall_allow") ?? [];
  const log = settingList(text, "global_syscall_log") ?? [];
  const error = (settingList(text, "global_syscall_error") ?? []).map((e) => e.replace(/:.*/, ""));
  const groups = settingList(text, "global_syscall_kill") ?? [];
  const lines = [...text.matchAll(/^#   ([a-z0-9_]+)(?: \(@[a-z-]+\))?: (.*)$/gm)].map((m) => ({ name: m[1]!, ev: m[2]! }));
  const ev = new Map(lines.map((l) => [l.name, l.ev]));
  const named = new Set([...allow, ...log, ...error]);
  const groupOf = new Map<string, string>();
  for (const g of groups) for (const n of expandGroup(g, arch).syscalls) if (!groupOf.has(n)) groupOf.set(n, g);
  const killed = [...groupOf.keys()].filter((n) => !named.has(n));
  const killedReachable = killed.filter((n) => /(^|; )static /.test(ev.get(n) ?? ""));
  const seen = allow.filter((n) => ev.get(n)?.startsWith("seen"));
  const seenStatic = seen.filter((n) => ev.get(n)?.includes("static ")).length;
  const withheld = Number(/Reachable statically but not allowed \((\d+)\)/.exec(text)?.[1] ?? 0);
  const total = Number(/\((\d+) syscalls[;)]/.exec(text)?.[1] ?? 0);
  const byDefault = allSyscalls(arch).length - new Set([...named, ...killed]).size;
  rows.push(
    `| ${f} | ${allow.length} | ${seen.length} | ${allow.length - seen.length} | ${log.length} | ${log.filter((n) => groupOf.has(n)).length} | ${error.length} | ${byDefault} | ${killed.length} | ${killedReachable.length} | ${withheld} | ${total} | ${seenStatic} | ${seen.length - seenStatic} | ${(seenStatic / total).toFixed(2)} |`,
  );
  if (!f.includes("io_uring")) {
    for (const n of killed) {
      const k = killedBy.get(n) ?? { group: groupOf.get(n)!, profiles: [] };
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
