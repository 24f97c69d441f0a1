// The import rules of src/, read from the layer table in docs/design.md ("## Layers"): one
// source of truth. Each row names a folder and the folders it may import; every other import
// between folders of src/ is an error. Used by .dependency-cruiser.cjs and test/layers.test.ts.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const DESIGN = join(__dirname, "..", "docs", "design.md");

/** The rows of the layer table: [{ folder: "policy", mayImport: ["syscalls", ...] | "anything" }]. */
function layerTable(markdown = readFileSync(DESIGN, "utf8")) {
  const section = markdown.split(/^## Layers\n/m)[1];
  if (section === undefined) throw new Error(`${DESIGN}: no "## Layers" section`);
  const lines = section.split("\n");
  const header = lines.find((l) => l.startsWith("| folder |"));
  if (!header) throw new Error(`${DESIGN}: the layer table has no "| folder |" header`);
  const cells = (l) => l.slice(1, -1).split(" | ").map((c) => c.trim());
  const col = cells(header).indexOf("may import");
  if (col < 0) throw new Error(`${DESIGN}: the layer table has no "may import" column`);
  const rows = [];
  for (const line of lines.slice(lines.indexOf(header) + 2)) {
    if (!line.startsWith("|")) break;
    const c = cells(line);
    const folder = /^`src\/([a-z]+)\/`$/.exec(c[0]);
    if (!folder) throw new Error(`${DESIGN}: layer table row "${line}": the folder must be written \`src/<name>/\``);
    const cell = c[col];
    let mayImport;
    if (cell === "anything") mayImport = "anything";
    else if (cell === "—" || cell === "-") mayImport = [];
    else {
      mayImport = cell.split(",").map((x) => {
        const m = /^`([a-z]+)\/`$/.exec(x.trim());
        if (!m) throw new Error(`${DESIGN}: layer table row src/${folder[1]}/: "${x.trim()}" is not a folder written \`name/\``);
        return m[1];
      });
    }
    rows.push({ folder: folder[1], mayImport });
  }
  const known = new Set(rows.map((r) => r.folder));
  for (const r of rows) {
    if (r.mayImport === "anything") continue;
    for (const x of r.mayImport) if (!known.has(x)) throw new Error(`${DESIGN}: src/${r.folder}/ may import ${x}/, which has no row`);
  }
  return rows;
}

const SOURCE = { pathNot: "\\.test\\.ts$" }; // tests may import anything

/** dependency-cruiser's `forbidden` rules for a layer table. */
function layerRules(rows = layerTable()) {
  const rules = [];
  for (const r of rows) {
    if (r.mayImport === "anything") continue;
    const allowed = [r.folder, ...r.mayImport];
    rules.push({
      name: `layer-${r.folder}`,
      comment: `src/${r.folder}/ may import ${r.mayImport.length ? r.mayImport.map((x) => `${x}/`).join(", ") : "no other folder of src/"} (docs/design.md, "Layers")`,
      severity: "error",
      from: { path: `^src/${r.folder}/`, ...SOURCE },
      to: { path: "^src/", pathNot: `^src/(${allowed.join("|")})/|^src/[^/]+$` },
    });
  }
  rules.push({
    name: "layer-table-row",
    comment: "every folder of src/ has a row in docs/design.md's layer table",
    severity: "error",
    from: { path: "^src/", pathNot: `^src/(${rows.map((r) => r.folder).join("|")})/|^src/[^/]+$` },
    to: {},
  });
  rules.push({
    name: "src-root-imports-nothing",
    comment: "a file at the root of src/ (errors.ts) may be imported by any layer, so it imports no folder of src/",
    severity: "error",
    from: { path: "^src/[^/]+$" },
    to: { path: "^src/[^/]+/" },
  });
  rules.push({
    name: "source-imports-source",
    comment: "src/ imports no test, bench or script code (tests may import anything)",
    severity: "error",
    from: { path: "^src/", ...SOURCE },
    to: { path: "^(test|bench|scripts)/" },
  });
  rules.push({
    name: "libc-in-kernel-only",
    comment: "only src/kernel/ calls libc (koffi)",
    severity: "error",
    from: { path: "^src/", pathNot: "^src/kernel/|\\.test\\.ts$" },
    to: { path: "(^|/)node_modules/koffi/" },
  });
  return rules;
}

module.exports = { layerTable, layerRules };
