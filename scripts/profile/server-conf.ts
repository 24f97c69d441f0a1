// The server settings of the profile workload (server.conf beside this file), with what a major
// needs for its own processes to run: PostgreSQL 17+'s WAL summarizer (summarize_wal = on).
// Shared by the profile builder and the profile tests.

import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../../scripts/profile");

export function profileServerConf(major: number): string[] {
  const lines = readFileSync(resolve(here, "server.conf"), "utf8").split("\n").filter((l) => l.trim() && !l.startsWith("#"));
  if (major >= 17) lines.push("summarize_wal = on");
  return lines;
}
