// Printing tables the way PostgreSQL's tools do: psql's aligned format, CSV (with a header
// line), and JSON. Pure string building; the CLI writes the result.

export type Cell = string | number | boolean | null;

/**
 * Characters that must not reach a terminal raw: C0 controls, DEL, C1 controls (\x9b is a CSI
 * on some terminals), line and paragraph separators, and the bidi marks, embeddings, overrides
 * and isolates that reorder what is shown. Text the server controls (process titles,
 * statements, role names) passes through here before it is printed.
 */
const UNSAFE_CHARS = /[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const C_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

/** `s` with every unsafe character written as an escape (\n, \x1b, \u202e). */
export function escapeControl(s: string): string {
  return s.replace(UNSAFE_CHARS, (c) => {
    const code = c.charCodeAt(0);
    return C_ESCAPES[c] ?? (code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`);
  });
}

/** What JSON.stringify leaves raw of UNSAFE_CHARS (it escapes C0 controls, and lone surrogates). */
const UNSAFE_IN_JSON = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/**
 * One JSON text for a terminal or a script: the rest of UNSAFE_CHARS, which can only occur
 * inside strings, is written as \uXXXX there (the same value for any JSON reader).
 */
export function safeJson(value: unknown, space?: number): string {
  return JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), space).replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * psql's default aligned output: centered headers, numbers right-aligned, "(N rows)". Control
 * characters in cells are escaped (escapeControl), so a cell is always one line.
 */
export function psqlTable(columns: readonly string[], rows: ReadonlyArray<Record<string, Cell>>, opts: { footer?: boolean } = {}): string {
  const text = (v: Cell) => (v === null ? "" : escapeControl(String(v)));
  const numeric = columns.map((c) => rows.length > 0 && rows.every((r) => typeof r[c] === "number"));
  const headers = columns.map(escapeControl);
  const widths = columns.map((c, i) => Math.max(headers[i]!.length, ...rows.map((r) => text(r[c] ?? null).length)));
  const center = (s: string, w: number) => {
    const left = Math.floor((w - s.length) / 2);
    return " ".repeat(left) + s + " ".repeat(w - s.length - left);
  };
  const lines: string[] = [];
  lines.push(headers.map((h, i) => ` ${center(h, widths[i]!)} `).join("|").trimEnd());
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
