// The allow-list sizes of the bundled profiles, from their evidence comments (docs/profiles.md's
// table): node dist/scripts/profile/sizes.js
//   seen        calls observed at run time (the "seen [...]" evidence)
//   floor only  allowed because of the floor alone
//   static only reachable according to the analysis, never seen, not in the floor (logged)
//   killed      reachable, in a killed group, never seen nor in the floor (stay killed)
//   withheld    reachable, gated features (io_uring, bpf, ptrace, ...), default error
//   static      the analysis's whole set; seen∩static / static is the precision of the static set
//               against what the runs observed; seen \ static is what the analysis missed

import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { settingList } from "../../src/analyze/profile.js";

const dir = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../profiles");
const rows: string[] = ["| profile | allowed | seen | floor only | static only (log) | static, killed | static, withheld | static set | seen ∩ static | seen not static | precision (seen ∩ static / static) |", "|---|---|---|---|---|---|---|---|---|---|---|"];
for (const f of readdirSync(dir).filter((n) => /^postgresql-\d+-(x86_64|aarch64)\.conf$/.test(n)).sort()) {
  const text = readFileSync(resolve(dir, f), "utf8");
  const allow = settingList(text, "global_syscall_allow") ?? [];
  const log = settingList(text, "global_syscall_log") ?? [];
  const lines = [...text.matchAll(/^#   ([a-z0-9_]+)(?: \(@[a-z-]+\))?: (.*)$/gm)].map((m) => ({ name: m[1]!, ev: m[2]! }));
  const ev = new Map(lines.map((l) => [l.name, l.ev]));
  const seen = allow.filter((n) => ev.get(n)?.startsWith("seen"));
  const seenStatic = seen.filter((n) => ev.get(n)?.includes("static ")).length;
  const killed = Number(/Reachable statically but killed \((\d+)\)/.exec(text)?.[1] ?? 0);
  const withheld = Number(/Reachable statically but not allowed \((\d+)\)/.exec(text)?.[1] ?? 0);
  const total = Number(/\((\d+) syscalls[;)]/.exec(text)?.[1] ?? 0);
  rows.push(`| ${f} | ${allow.length} | ${seen.length} | ${allow.length - seen.length} | ${log.length} | ${killed} | ${withheld} | ${total} | ${seenStatic} | ${seen.length - seenStatic} | ${(seenStatic / total).toFixed(2)} |`);
}
process.stdout.write(rows.join("\n") + "\n");
