// The import rules `npm run lint:layers` enforces are read from docs/design.md's layer table
// (scripts/layer-rules.cjs): these tests check that the table covers src/, that the rules say
// what the table says, and that the checker really fails on an import against the table.

import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { repoPath } from "./support/paths.js";

interface LayerRow { folder: string; mayImport: string[] | "anything" }
interface Rule { name: string; from: { path: string; pathNot?: string }; to: { path?: string; pathNot?: string } }
const require = createRequire(import.meta.url);
const { layerTable, layerRules } = require(repoPath("scripts/layer-rules.cjs")) as {
  layerTable(markdown?: string): LayerRow[];
  layerRules(rows?: LayerRow[]): Rule[];
};

test("every folder of src/ has a row in docs/design.md's layer table", () => {
  const rows = layerTable();
  const folders = readdirSync(repoPath("src"), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  const missing = folders.filter((f) => !rows.some((r) => r.folder === f));
  assert.deepEqual(missing, [], "add a row for each to the table in docs/design.md, \"Layers\"");
  // What the issue asked for, as the table says it.
  const may = (f: string) => rows.find((r) => r.folder === f)!.mayImport;
  assert.deepEqual(may("seccomp"), [], "the seccomp ABI imports nothing");
  assert.deepEqual(may("syscalls"), ["seccomp"], "syscall tables use only the ABI's arch tokens");
  assert.ok(!may("bpf").includes("policy"), "bpf/ knows nothing of policies");
  for (const f of ["inspect", "sql"]) assert.ok(!may(f).includes("launcher"), `${f}/ does not import launcher/`);
  assert.ok(!may("learn").includes("inspect"));
  assert.ok(!may("launcher").includes("inspect"));
  assert.equal(may("cli"), "anything");
});

test("lint:layers runs exactly the rules the table gives", () => {
  const config = require(repoPath(".dependency-cruiser.cjs")) as { forbidden: Rule[] };
  assert.deepEqual(config.forbidden, layerRules(layerTable(readFileSync(repoPath("docs/design.md"), "utf8"))));
  const pkg = JSON.parse(readFileSync(repoPath("package.json"), "utf8")) as { scripts: Record<string, string> };
  assert.match(pkg.scripts["lint:layers"]!, /depcruise --config \.dependency-cruiser\.cjs .*src$/);
  assert.match(pkg.scripts.test!, /npm run lint:layers/);
});

test("a malformed table is refused with the row that is wrong", () => {
  const table = (rows: string) => `# x\n\n## Layers\n\n| folder | what it does | may import |\n|---|---|---|\n${rows}\n\nafter\n`;
  assert.deepEqual(layerTable(table("| `src/a/` | a | — |\n| `src/b/` | b | `a/` |")), [{ folder: "a", mayImport: [] }, { folder: "b", mayImport: ["a"] }]);
  assert.throws(() => layerTable(table("| `src/a/` | a | `c/` |")), /src\/a\/ may import c\/, which has no row/);
  assert.throws(() => layerTable(table("| `src/a/` | a | policy |")), /"policy" is not a folder/);
  assert.throws(() => layerTable("# no table\n"), /no "## Layers" section/);
});

test("the checker fails on an import against the table, and lets tests import anything", async () => {
  const { cruise } = await import("dependency-cruiser");
  const dir = mkdtempSync(join(tmpdir(), "pg_seccomp-layers-"));
  try {
    const files: Record<string, string> = {
      "src/policy/model.ts": 'import { run } from "../launcher/run.js";\nexport const model = run;\n',
      "src/policy/model.test.ts": 'import { run } from "../launcher/run.js";\nexport const t = run;\n',
      "src/launcher/run.ts": 'import { insn } from "../bpf/insn.js";\nexport const run = insn;\n',
      "src/bpf/insn.ts": 'import type { Policy } from "../policy/types.js";\nexport const insn = 1;\nexport type P = Policy;\n',
      "src/policy/types.ts": "export interface Policy { x: number }\n",
      "src/kernel/libc.ts": "export const libc = 1;\n",
      "src/sql/install.ts": 'import { helper } from "../../test/support/helper.js";\nexport const sql = helper;\n',
      "test/support/helper.ts": "export const helper = 1;\n",
    };
    for (const [f, text] of Object.entries(files)) {
      mkdirSync(dirname(join(dir, f)), { recursive: true });
      writeFileSync(join(dir, f), text);
    }
    const rows: LayerRow[] = [
      { folder: "policy", mayImport: [] }, { folder: "bpf", mayImport: [] }, { folder: "kernel", mayImport: ["bpf"] },
      { folder: "launcher", mayImport: ["policy", "bpf", "kernel"] }, { folder: "sql", mayImport: ["policy"] },
    ];
    const result = await cruise(["src"], {
      baseDir: dir, validate: true, ruleSet: { forbidden: layerRules(rows) } as never, tsPreCompilationDeps: true,
    }, { extensions: [".ts", ".js"] }, undefined);
    const output = result.output as { summary: { violations: Array<{ from: string; to: string; rule: { name: string } }> } };
    const found = output.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`).sort();
    assert.deepEqual(found, [
      "layer-bpf: src/bpf/insn.ts → src/policy/types.ts",
      "layer-policy: src/policy/model.ts → src/launcher/run.ts",
      "source-imports-source: src/sql/install.ts → test/support/helper.ts",
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
