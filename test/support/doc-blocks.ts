// The fenced code blocks of README.md and docs/*.md, with their info strings read as
// `LANG [test=NAME | test=output | not-run="why"]`: how each block that shows commands is tested
// (test/docs-commands.test.ts enforces it). A test that runs a block reads it from here with
// blocksTestedBy("NAME"), so the docs and the test cannot drift apart.

import { readdirSync, readFileSync } from "node:fs";
import { repoPath } from "./paths.js";

export interface DocBlock {
  /** Relative to the repository: README.md, docs/deploy.md. */
  file: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  attrs: Map<string, string>;
  body: string;
  /** The `## ` heading the block is under ("" before the first). */
  section: string;
}

export function docFiles(): string[] {
  return ["README.md", ...readdirSync(repoPath("docs")).filter((f) => f.endsWith(".md")).sort().map((f) => `docs/${f}`)];
}

export function docBlocks(file: string): DocBlock[] {
  const lines = readFileSync(repoPath(file), "utf8").split("\n");
  const blocks: DocBlock[] = [];
  let section = "";
  for (let i = 0; i < lines.length; i++) {
    const h = /^## (.*)$/.exec(lines[i]!);
    if (h) section = h[1]!;
    const open = /^(\s*)```(.*)$/.exec(lines[i]!);
    if (!open) continue;
    const indent = open[1]!.length;
    const info = open[2]!.trim();
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]!); j++) body.push(lines[j]!.slice(indent));
    const [lang = "", ...rest] = info.split(/\s+/);
    const attrs = new Map<string, string>();
    for (const m of rest.join(" ").matchAll(/([\w-]+)=("([^"]*)"|\S+)/g)) attrs.set(m[1]!, m[3] ?? m[2]!);
    blocks.push({ file, line: i + 1, lang, attrs, body: body.join("\n") + "\n", section });
    i = j;
  }
  return blocks;
}

export function allDocBlocks(): DocBlock[] {
  return docFiles().flatMap(docBlocks);
}

/** The blocks marked `test=NAME`, in document order: what test/NAME.test.ts runs. */
export function blocksTestedBy(name: string): DocBlock[] {
  return allDocBlocks().filter((b) => b.attrs.get("test") === name);
}
