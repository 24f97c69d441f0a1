// Statistics, tables, settings and machine notes shared by the benchmarks in bench/.

import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";
import { findPgBinDir } from "../../src/postgres/cluster.js";

export function positiveInt(s: string | undefined, dflt: number): number {
  const n = s === undefined || s === "" ? NaN : Number(s);
  return Number.isInteger(n) && n > 0 ? n : dflt;
}

export function nonNegativeInt(s: string | undefined, dflt: number): number {
  const n = s === undefined || s === "" ? NaN : Number(s);
  return Number.isInteger(n) && n >= 0 ? n : dflt;
}

export function median(xs: number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** The q-quantile (nearest rank) of xs. */
export function quantile(xs: number[], q: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}

export function mdTable(header: string[], rows: string[][], right: boolean[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    "| " + cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join(" | ") + " |";
  const sep = "|" + widths.map((w, i) => (right[i] ? "-".repeat(w + 1) + ":" : "-".repeat(w + 2))).join("|") + "|";
  return [line(header), sep, ...rows.map(line)].join("\n");
}

export interface Machine {
  nproc: string;
  cpu: string;
  kernel: string;
  postgres: string;
  node: string;
  /** /sys/devices/system/cpu/vulnerabilities/spec_store_bypass */
  ssb: string;
}

export function machine(): Machine {
  const sh = (cmd: string, args: string[]) => spawnSync(cmd, args, { encoding: "utf8" }).stdout?.trim() ?? "?";
  let ssb = "?";
  try {
    ssb = readFileSync("/sys/devices/system/cpu/vulnerabilities/spec_store_bypass", "utf8").trim();
  } catch {
    /* not exposed */
  }
  return {
    nproc: sh("nproc", []),
    cpu: cpus()[0]?.model ?? "?",
    kernel: sh("uname", ["-r"]),
    postgres: sh(join(findPgBinDir(), "postgres"), ["--version"]),
    node: process.version,
    ssb,
  };
}

export function log(line: string): void {
  process.stdout.write(line + "\n");
}
