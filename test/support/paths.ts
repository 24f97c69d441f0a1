import { fileURLToPath } from "node:url";
import { resolve } from "node:path";
import { hostArch } from "../../src/syscalls/index.js";

/** The repository root: tests run from dist/test/..., sources live beside dist. */
const ROOT = resolve(fileURLToPath(new URL(".", import.meta.url)), "../../..");

export function repoPath(rel: string): string {
  return resolve(ROOT, rel);
}

/** The bundled starter profile of `major` for the machine the tests run on (x86_64 here, aarch64 in the lab's arm64 VM). */
export function hostProfilePath(major = 15): string {
  return repoPath(`profiles/postgresql-${major}-${hostArch()}.conf`);
}
