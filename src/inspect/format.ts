// Printing tables the way PostgreSQL's tools do: psql's aligned format, CSV (with a header
// line), and JSON. Pure string building; the CLI writes the result.

export type Cell = string | number | boolean | null;

/** psql's default aligned output: centered headers, numbers right-aligned, "(N rows)". */
export function psqlTable(columns: readonly string[], rows: ReadonlyArray<Record<string, Cell>>, opts: { footer?: boolean } = {}): string {
  const text = (v: Cell) => (v === null ? "" : String(v));
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof r[c] === "number"));
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => text(r[c] ?? null).length)));
  const center = (s: string, w: number) => {
    const left = Math.floor((w - s.length) / 2);
    return " ".repeat(left) + s + " ".repeat(w - s.length - left);
  };
  const lines: string[] = [];
  lines.push(columns.map((c, i) => ` ${center(c, widths[i]!)} `).join("|").trimEnd());
  lines.push(widths.map((w) => "-".repeat(w + 2)).join("+"));
  for (const r of rows) {
    lines.push(
      columns
        .map((c, i) => {
          const v = text(r[c] ?? null);
          return ` ${numeric[i] ? v.padStart(widths[i]!) : v.padEnd(widths[i]!)} `;
        })
        .join("|")
        .trimEnd(),
    );
  }
  if (opts.footer !== false) lines.push(`(${rows.length} ${rows.length === 1 ? "row" : "rows"})`);
  return lines.join("\n") + "\n";
}

/** RFC 4180 CSV with a header line, as psql's --csv prints it. */
export function csvTable(columns: readonly string[], rows: ReadonlyArray<Record<string, Cell>>): string {
  const quote = (v: Cell) => {
    const s = v === null ? "" : String(v);
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  return [columns.join(","), ...rows.map((r) => columns.map((c) => quote(r[c] ?? null)).join(","))].join("\n") + "\n";
}
