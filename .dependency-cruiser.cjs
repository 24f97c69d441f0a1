// Import rules for src/, generated from docs/design.md's layer table (scripts/layer-rules.cjs).
// Run: npm run lint:layers (part of npm test).
"use strict";
const { layerRules } = require("./scripts/layer-rules.cjs");

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: layerRules(),
  options: {
    doNotFollow: { path: "node_modules" },
    tsConfig: { fileName: "tsconfig.json" },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { exportsFields: ["exports"], conditionNames: ["import", "require", "node", "default"], extensions: [".ts", ".js"] },
    exclude: { path: "^(dist|node_modules)/" },
  },
};
