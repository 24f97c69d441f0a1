// Writes docs/man/pg_seccomp.1 from the commander program (the same text as --help):
//   npx tsc -p tsconfig.json && node dist/scripts/gen-man.js
// test/manpage.test.ts fails when the page in the tree is not what this writes.

import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildProgram, packageVersion } from "../src/cli/program.js";
import { manPage } from "../src/cli/manpage.js";

export const MAN_PAGE = "docs/man/pg_seccomp.1";

const repo = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const out = join(repo, MAN_PAGE);
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, manPage(buildProgram(), packageVersion()));
  process.stdout.write(`wrote ${MAN_PAGE}\n`);
}
