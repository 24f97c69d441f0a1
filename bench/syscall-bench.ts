// What a filter costs per syscall, measured in the kernel's terms: a small C program
// (bench/syscall-bench.c, compiled here with `cc`) makes a loop of one syscall at a time under
//   none        no filter
//   allow-all   a one-instruction filter (RET ALLOW): the floor for seccomp itself
//   policy      the policy's global program, compiled alone (compilePolicy)
//   run         the program `run` installs for the policy (compose(): refusals, routing)
//   run+knock   the same with set_client_filter = on (the knock checks lseek's offset)
// for getppid (no argument) and lseek, read and fcntl on /dev/null. Variants are interleaved:
// each round runs every variant once, in a rotating order, each in a fresh process. The report
// gives, per variant and call, ns per call, the difference from no filter, and the ratio to the
// allow-all floor (1.00: the filter costs what seccomp itself costs). The statistic is the
// minimum over rounds by default (the round least disturbed by other processes: on a shared
// machine the median mostly measures the neighbours); --stat median gives the median.
//
//   npm run bench:syscall [-- --policy FILE] [--rounds N] [--iterations N] [--stat min|median] [--json] [--helper BIN]

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeProgram, BPF_RET, BPF_K, type Insn } from "../src/bpf/insn.js";
import { SECCOMP_RET_ALLOW } from "../src/seccomp/index.js";
import { compilePolicy } from "../src/compile/compile.js";
import { compose } from "../src/compile/compose.js";
import { loadPolicyFile, type Policy } from "../src/policy/policy.js";
import { hostArch } from "../src/syscalls/index.js";

const CALLS = ["getppid", "lseek", "read", "fcntl"] as const;
const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function option(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const arch = hostArch();
const policyPath = option("policy", join(ROOT, `profiles/postgresql-15-${arch}.conf`));
const rounds = Number(option("rounds", "25"));
const iterations = Number(option("iterations", "200000"));
const stat = option("stat", "min");
if (stat !== "min" && stat !== "median") throw new Error("--stat: min or median");
const json = process.argv.includes("--json");

const work = mkdtempSync(join(tmpdir(), "pg_seccomp-syscall-bench-"));
try {
  // --helper: bench/syscall-bench.c compiled elsewhere (the VM lab has no compiler: lab/run.sh
  // builds it statically on the host).
  const helper = option("helper", "") || join(work, "syscall-bench");
  if (!option("helper", "")) {
    const cc = spawnSync("cc", ["-O2", "-Wall", "-o", helper, join(ROOT, "bench/syscall-bench.c")], { encoding: "utf8" });
    if (cc.error || cc.status !== 0) {
      process.stderr.write(`syscall-bench: needs a C compiler (cc): ${cc.error?.message ?? cc.stderr}\n`);
      process.exit(1);
    }
  }

  const policy: Policy = loadPolicyFile(policyPath);
  const variants: Array<{ name: string; program?: readonly Insn[] }> = [
    { name: "none" },
    { name: "allow-all", program: [{ code: BPF_RET | BPF_K, jt: 0, jf: 0, k: SECCOMP_RET_ALLOW }] },
    { name: "policy", program: compilePolicy(policy, arch, { context: "global" }) },
    { name: "run", program: compose({ ...policy, clientFilter: false }, arch).installed },
    { name: "run+knock", program: compose({ ...policy, clientFilter: true }, arch).installed },
  ];
  const files = new Map<string, string>();
  for (const v of variants) {
    if (!v.program) continue;
    const f = join(work, `${v.name}.bpf`);
    writeFileSync(f, encodeProgram(v.program));
    files.set(v.name, f);
  }

  // ns per call, per variant and call, one entry per round.
  const samples = new Map<string, number[]>();
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      const v = variants[(i + r) % variants.length]!;
      const run = spawnSync(helper, [files.get(v.name) ?? "-", String(iterations), ...CALLS], { encoding: "utf8" });
      if (run.status !== 0) throw new Error(`${v.name}: ${run.stderr || run.error?.message}`);
      for (const line of run.stdout.trim().split("\n")) {
        const [call, ns] = line.split(" ");
        const key = `${v.name} ${call}`;
        samples.set(key, [...(samples.get(key) ?? []), Number(ns)]);
      }
    }
  }
  const median = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
  };
  const pick = stat === "min" ? (xs: number[]) => Math.min(...xs) : median;
  const result = variants.map((v) => ({
    variant: v.name,
    instructions: v.program?.length ?? 0,
    calls: Object.fromEntries(CALLS.map((c) => [c, pick(samples.get(`${v.name} ${c}`)!)])),
    medians: Object.fromEntries(CALLS.map((c) => [c, median(samples.get(`${v.name} ${c}`)!)])),
  }));
  if (json) {
    process.stdout.write(JSON.stringify({ arch, policy: policyPath, rounds, iterations, stat, result }, null, 2) + "\n");
  } else {
    const none = result[0]!.calls;
    const floor = result[1]!.calls;
    const lines = [
      `arch ${arch}, policy ${policyPath}, ${rounds} rounds × ${iterations} calls, ${stat} over rounds of ns per call (+Δ over no filter; ratio to allow-all)`,
      "",
      `| filter | insns | ${CALLS.join(" | ")} |`,
      `|---|---:|${CALLS.map(() => "---:").join("|")}|`,
      ...result.map((r) =>
        `| ${r.variant} | ${r.instructions} | ${CALLS.map((c) => {
          const ns = r.calls[c]!;
          return r.variant === "none" ? ns.toFixed(1) : `${ns.toFixed(1)} (+${(ns - none[c]!).toFixed(1)}; ${(ns / floor[c]!).toFixed(2)})`;
        }).join(" | ")} |`),
    ];
    process.stdout.write(lines.join("\n") + "\n");
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
