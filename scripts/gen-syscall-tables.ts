/**
 * Generates src/syscalls/table-x86_64.ts and src/syscalls/table-aarch64.ts
 * from the Linux kernel's own syscall tables.
 *
 * Inputs (all from one kernel release; the committed tables were generated
 * from the v6.18 tag of https://git.kernel.org/pub/scm/linux/kernel/git/torvalds/linux.git):
 *
 *   arch/x86/entry/syscalls/syscall_64.tbl   x86_64 table; rows with ABI "common"
 *                                            or "64" are used, "x32" rows are not
 *                                            (they belong to the x32 ABI, numbers 512+).
 *   scripts/syscall.tbl                      the generic table used by arm64 since
 *                                            Linux 6.11 (arch/arm64/tools/syscall_64.tbl
 *                                            is a symlink to it).
 *   arch/arm64/kernel/Makefile.syscalls      optional; its "syscall_abis_64 += ..."
 *                                            line lists the extra ABIs arm64 enables on
 *                                            top of "common,64" (scripts/Makefile.asm-headers).
 *                                            Without it the v6.18 list is assumed:
 *                                            renameat newstat rlimit memfd_secret.
 *
 * Every row of a selected ABI is emitted, including numbers whose entry point
 * is missing or sys_ni_syscall (e.g. x86_64 uselib, create_module, _sysctl):
 * the kernel still reserves the number and <asm/unistd.h> still defines
 * __NR_<name>, and a seccomp policy may want to name them.
 *
 * Usage (after `npx tsc -p tsconfig.json`):
 *
 *   node dist/scripts/gen-syscall-tables.js \
 *     --kernel-version v6.18 \
 *     --x86-64-tbl   /tmp/linux/arch/x86/entry/syscalls/syscall_64.tbl \
 *     --generic-tbl  /tmp/linux/scripts/syscall.tbl \
 *     [--arm64-makefile /tmp/linux/arch/arm64/kernel/Makefile.syscalls] \
 *     [--out-dir src/syscalls]
 *
 * Keep the kernel sources outside the repository (e.g. under /tmp); only the
 * generated tables are committed.
 */

import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

export interface TblRow {
  readonly nr: number;
  readonly abi: string;
  readonly name: string;
  readonly entry: string | undefined;
  readonly line: number;
}

export const X86_64_ABIS: readonly string[] = ["common", "64"];
/** ABIs arm64 uses from scripts/syscall.tbl when no Makefile.syscalls is given (Linux 6.11 .. 6.18). */
export const ARM64_DEFAULT_ABIS: readonly string[] = ["common", "64", "renameat", "newstat", "rlimit", "memfd_secret"];

/** Parses a kernel *.tbl file: `<number> <abi> <name> [<entry point> [<compat entry point> [noreturn]]]`. */
export function parseTbl(text: string, fileLabel = "<tbl>"): TblRow[] {
  const rows: TblRow[] = [];
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, idx) => {
    const line = raw.replace(/#.*$/, "").trim();
    if (line === "") return;
    const fields = line.split(/\s+/);
    const [nrText, abi, name, entry] = fields;
    if (nrText === undefined || abi === undefined || name === undefined || !/^\d+$/.test(nrText)) {
      throw new Error(`${fileLabel}:${idx + 1}: cannot parse syscall table row: ${JSON.stringify(raw)}`);
    }
    if (!/^[a-z_][a-z0-9_]*$/.test(name)) {
      throw new Error(`${fileLabel}:${idx + 1}: unexpected syscall name ${JSON.stringify(name)}`);
    }
    rows.push({ nr: Number(nrText), abi, name, entry, line: idx + 1 });
  });
  return rows;
}

/** Extracts the arch-specific ABI list from arch/<arch>/kernel/Makefile.syscalls (syscall_abis_64 += ...). */
export function parseMakefileAbis(text: string, bits: "32" | "64" = "64"): string[] {
  const abis: string[] = [];
  const re = new RegExp(`^\\s*syscall_abis_${bits}\\s*[+:]?=\\s*(.*)$`);
  for (const raw of text.split(/\r?\n/)) {
    const m = re.exec(raw.replace(/#.*$/, ""));
    if (m?.[1] === undefined) continue;
    for (const word of m[1].split(/[\s,]+/)) if (word !== "") abis.push(word);
  }
  return abis;
}

/** Selects the rows of the given ABIs and checks that names and numbers are unique. */
export function selectTable(rows: readonly TblRow[], abis: readonly string[], label: string): Array<[string, number]> {
  const wanted = new Set(abis);
  const byName = new Map<string, TblRow>();
  const byNr = new Map<number, TblRow>();
  for (const row of rows) {
    if (!wanted.has(row.abi)) continue;
    const dupName = byName.get(row.name);
    if (dupName) throw new Error(`${label}: syscall ${row.name} defined twice (lines ${dupName.line} and ${row.line})`);
    const dupNr = byNr.get(row.nr);
    if (dupNr) throw new Error(`${label}: number ${row.nr} used by both ${dupNr.name} and ${row.name}`);
    byName.set(row.name, row);
    byNr.set(row.nr, row);
  }
  return [...byName.values()].sort((a, b) => a.nr - b.nr).map((r) => [r.name, r.nr]);
}

export function renderTable(opts: {
  constName: string;
  infoName: string;
  arch: string;
  kernelVersion: string;
  sources: readonly string[];
  abis: readonly string[];
  table: ReadonlyArray<readonly [string, number]>;
}): string {
  const { constName, infoName, arch, kernelVersion, sources, abis, table } = opts;
  const out: string[] = [];
  out.push("// GENERATED FILE - DO NOT EDIT.");
  out.push("// Generated by scripts/gen-syscall-tables.ts from the Linux kernel's syscall tables:");
  out.push(`//   kernel: ${kernelVersion}`);
  for (const s of sources) out.push(`//   source: ${s}`);
  out.push(`//   ABIs:   ${abis.join(", ")}`);
  out.push(`// ${arch}: ${table.length} syscalls, highest number ${table.length ? table[table.length - 1]![1] : -1}.`);
  out.push("");
  out.push(`export const ${infoName} = {`);
  out.push(`  arch: ${JSON.stringify(arch)},`);
  out.push(`  kernelVersion: ${JSON.stringify(kernelVersion)},`);
  out.push(`  sources: ${JSON.stringify(sources)},`);
  out.push(`  abis: ${JSON.stringify(abis)},`);
  out.push("} as const;");
  out.push("");
  out.push(`export const ${constName}: ReadonlyArray<readonly [name: string, nr: number]> = [`);
  for (const [name, nr] of table) out.push(`  [${JSON.stringify(name)}, ${nr}],`);
  out.push("];");
  out.push("");
  return out.join("\n");
}

interface Args {
  kernelVersion: string;
  x86Tbl: string;
  genericTbl: string;
  arm64Makefile: string | undefined;
  outDir: string;
}

function parseArgs(argv: readonly string[]): Args {
  const map = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i]!;
    if (key === "--help" || key === "-h") {
      process.stdout.write(
        "usage: gen-syscall-tables --kernel-version vX.Y --x86-64-tbl FILE --generic-tbl FILE " +
          "[--arm64-makefile FILE] [--out-dir DIR]\n",
      );
      process.exit(0);
    }
    const value = argv[i + 1];
    if (!key.startsWith("--") || value === undefined) throw new Error(`bad argument ${JSON.stringify(key)} (see --help)`);
    map.set(key, value);
    i++;
  }
  const need = (k: string): string => {
    const v = map.get(k);
    if (v === undefined) throw new Error(`missing ${k} (see --help)`);
    return v;
  };
  return {
    kernelVersion: need("--kernel-version"),
    x86Tbl: need("--x86-64-tbl"),
    genericTbl: need("--generic-tbl"),
    arm64Makefile: map.get("--arm64-makefile"),
    outDir: map.get("--out-dir") ?? "src/syscalls",
  };
}

function main(): void {
  const args = parseArgs(process.argv.slice(2));

  const x86Rows = parseTbl(readFileSync(args.x86Tbl, "utf8"), args.x86Tbl);
  const x86 = selectTable(x86Rows, X86_64_ABIS, "x86_64");

  let arm64Abis = [...ARM64_DEFAULT_ABIS];
  if (args.arm64Makefile !== undefined) {
    arm64Abis = ["common", "64", ...parseMakefileAbis(readFileSync(args.arm64Makefile, "utf8"), "64")];
  }
  const genericRows = parseTbl(readFileSync(args.genericTbl, "utf8"), args.genericTbl);
  const arm64 = selectTable(genericRows, arm64Abis, "aarch64");

  const outDir = resolve(args.outDir);
  writeFileSync(
    resolve(outDir, "table-x86_64.ts"),
    renderTable({
      constName: "X86_64_TABLE",
      infoName: "X86_64_TABLE_INFO",
      arch: "x86_64",
      kernelVersion: args.kernelVersion,
      sources: ["arch/x86/entry/syscalls/syscall_64.tbl"],
      abis: X86_64_ABIS,
      table: x86,
    }),
  );
  writeFileSync(
    resolve(outDir, "table-aarch64.ts"),
    renderTable({
      constName: "AARCH64_TABLE",
      infoName: "AARCH64_TABLE_INFO",
      arch: "aarch64",
      kernelVersion: args.kernelVersion,
      sources:
        args.arm64Makefile !== undefined
          ? ["scripts/syscall.tbl", "arch/arm64/kernel/Makefile.syscalls"]
          : ["scripts/syscall.tbl"],
      abis: arm64Abis,
      table: arm64,
    }),
  );
  process.stdout.write(
    `wrote ${x86.length} x86_64 and ${arm64.length} aarch64 syscalls (${args.kernelVersion}) to ${outDir}\n`,
  );
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  try {
    main();
  } catch (err) {
    process.stderr.write(`gen-syscall-tables: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}
