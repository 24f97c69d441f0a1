// pg_seccomp analyze: time for postgres and every library it loads, cold cache and warm cache,
// next to `objdump -d` of the same files (a full linear disassembly, as a baseline).
// Usage: npm run bench:analyze   (BENCH_POSTGRES=path for another server binary)

import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { analyze, DEFAULT_POSTGRES } from "../src/analyze/analyze.js";

const postgres = process.env.BENCH_POSTGRES ?? DEFAULT_POSTGRES;
const runs = Number(process.env.BENCH_RUNS ?? 3);

function mb(n: number): string {
  return (n / 1e6).toFixed(1);
}

async function main(): Promise<void> {
  console.log(`machine: ${cpus().length} CPUs, ${cpus()[0]?.model ?? "?"}, Node ${process.version}, load average ${loadavg().map((x) => x.toFixed(1)).join(" ")}`);
  const cold: number[] = [];
  const warm: number[] = [];
  let last;
  for (let i = 0; i < runs; i++) {
    const cache = mkdtempSync(join(tmpdir(), "pg_seccomp-bench-cache-"));
    try {
      // Each cold run is a fresh process state for the cache only: Capstone stays loaded after
      // the first run, so the first cold run also pays its start-up (reported separately).
      let t = performance.now();
      last = await analyze({ postgres, cacheDir: cache });
      cold.push((performance.now() - t) / 1000);
      t = performance.now();
      await analyze({ postgres, cacheDir: cache });
      warm.push((performance.now() - t) / 1000);
    } finally {
      rmSync(cache, { recursive: true, force: true });
    }
  }
  const r = last!;
  const bytes = r.binaries.reduce((s, b) => s + b.bytes, 0);
  console.log(`${postgres}: ${r.binaries.length} files, ${mb(bytes)} MB on disk, ${mb(r.stats.codeBytes)} MB of executable sections`);
  console.log(`syscalls: ${r.syscalls.length} (${r.stats.callPathSyscalls} with a direct call path), unresolved sites: ${r.unresolved.length}`);
  console.log(`analyze, cold cache: ${cold.map((x) => x.toFixed(2)).join(", ")} s (first run includes loading Capstone)`);
  console.log(`analyze, warm cache: ${warm.map((x) => x.toFixed(2)).join(", ")} s`);

  const hasObjdump = spawnSync("sh", ["-c", "command -v objdump"]).status === 0;
  if (!hasObjdump) {
    console.log("objdump: not installed, no baseline");
    return;
  }
  const t = performance.now();
  for (const b of r.binaries) {
    spawnSync("sh", ["-c", `objdump -d '${b.path.replace(/'/g, "'\\''")}' > /dev/null`]);
  }
  const od = (performance.now() - t) / 1000;
  const best = Math.min(...cold);
  console.log(`objdump -d of the same ${r.binaries.length} files: ${od.toFixed(2)} s; analyze cold / objdump = ${(best / od).toFixed(2)}`);
}

await main();
