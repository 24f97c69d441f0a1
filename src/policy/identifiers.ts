// PostgreSQL's reading of a list of names (SplitIdentifierString in varlena.c, as pgseccomp reads
// session_roles and its syscall lists): comma-separated, blanks around names ignored, an unquoted
// name folded to lower case (ASCII only, as downcase_identifier does for single-byte letters) and
// truncated to NAMEDATALEN-1 bytes, a "quoted" name kept as written without its quotes ("" is a
// quote inside it). A syntax error is null, as SplitIdentifierString returns false.

export const NAMEDATALEN = 64;

export interface Identifier {
  name: string;
  quoted: boolean;
}

function truncate(name: string): string {
  const b = Buffer.from(name, "utf8");
  if (b.length < NAMEDATALEN) return name;
  // Cut at a character boundary, as pg_mbcliplen does.
  let n = NAMEDATALEN - 1;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--;
  return b.subarray(0, n).toString("utf8");
}

const BLANK = /[ \t\n\r\f]/; // scanner_isspace

export function splitIdentifierString(text: string, separator = ","): Identifier[] | null {
  const out: Identifier[] = [];
  let i = 0;
  while (i < text.length && BLANK.test(text[i]!)) i++;
  if (i >= text.length) return out; // an empty string is an empty list
  for (;;) {
    let name: string;
    let quoted = false;
    if (text[i] === '"') {
      quoted = true;
      name = "";
      i++;
      for (;;) {
        if (i >= text.length) return null; // mismatched quotes
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += text[i++];
      }
      if (name === "") return null; // empty quoted name
    } else {
      const start = i;
      while (i < text.length && text[i] !== separator && !BLANK.test(text[i]!)) i++;
      if (i === start) return null; // empty unquoted name
      name = text.slice(start, i).replace(/[A-Z]/g, (c) => c.toLowerCase());
    }
    while (i < text.length && BLANK.test(text[i]!)) i++;
    out.push({ name: truncate(name), quoted });
    if (i >= text.length) return out;
    if (text[i] !== separator) return null; // invalid syntax
    i++;
    while (i < text.length && BLANK.test(text[i]!)) i++;
  }
}

/** A name as PostgreSQL would quote it in a list: bare when folding leaves it as is. */
export function quoteIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}
