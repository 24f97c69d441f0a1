import { fileURLToPath } from "node:url";
import { resolve } from "node:path";

/** The repository root: tests run from dist/test/..., sources live beside dist. */
const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

export function repoPath(rel: string): string {
  return resolve(ROOT, rel);
}
