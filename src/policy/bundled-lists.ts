// What every learned policy keeps, and what learning allows in the kernel by default.
//
// - The floor (profiles/floor.conf): calls glibc makes on paths a learning run rarely reaches
//   (brk and madvise from malloc/free, the vDSO clock fallbacks, gettid/tgkill from abort(),
//   sync_file_range in recovery, ...), the killed groups of dangerous calls and the hardening
//   presets. A learned policy always allows the floor in every context and keeps its kill list:
//   a policy learned without it killed a background writer in brk (issue 9).
// - The hot-path calls (profiles/learn-hot.conf): what every context makes on its hot paths,
//   measured (bench/learn-hot-calls.ts). The default learning base is floor + hot calls: they are
//   decided in the kernel, so learning runs at near-unfiltered speed, and every other call goes
//   to the supervisor and is learned per context.

import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

const PROFILES = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../profiles");
export const FLOOR_PATH = resolve(PROFILES, "floor.conf");
export const HOT_CALLS_PATH = resolve(PROFILES, "learn-hot.conf");

/** The names in a hot-calls file: one or more per line, comma or space separated, # comments. */
export function parseHotCalls(text: string): string[] {
  const out: string[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.replace(/#.*/, "").trim();
    if (!line) continue;
    for (const n of line.split(/[\s,]+/).filter(Boolean)) {
      if (!/^[a-z_][a-z0-9_]*$/.test(n)) throw new Error(`${HOT_CALLS_PATH}: "${n}" is not a syscall name`);
      out.push(n);
    }
  }
  return [...new Set(out)];
}

/** The value of `setting = '...'` in policy text (the floor's lists), or undefined. */
export function settingValue(text: string, setting: string): string | undefined {
  const m = new RegExp(`^\\s*${setting}\\s*=\\s*'([^']*)'`, "m").exec(text);
  return m?.[1];
}

/** The floor's allow list and kill list (names and groups as written). */
export function floorLists(text: string): { allow: string[]; kill: string[] } {
  const list = (s: string | undefined) => (s ?? "").split(",").map((x) => x.trim()).filter(Boolean);
  return { allow: list(settingValue(text, "global_syscall_allow")), kill: list(settingValue(text, "global_syscall_kill")) };
}

/** The default learning base: the floor with the hot-path calls added to its allow list. */
export function hotBaseText(floorText: string, hot: readonly string[]): string {
  const { allow } = floorLists(floorText);
  const union = [...allow, ...hot.filter((n) => !allow.includes(n))];
  const replaced = floorText.replace(/^(\s*global_syscall_allow\s*=\s*)'[^']*'/m, `$1'${union.join(", ")}'`);
  return `# pg_seccomp learn's default base: profiles/floor.conf with the hot-path calls of profiles/learn-hot.conf allowed\n${replaced}`;
}

export function readFloor(): string {
  return readFileSync(FLOOR_PATH, "utf8");
}

export function readHotCalls(): string[] {
  return parseHotCalls(readFileSync(HOT_CALLS_PATH, "utf8"));
}
