// A reader for postgresql.conf syntax (PostgreSQL's guc-file.l): `name = value` lines, `=`
// optional, `#` comments, single-quoted values with '' and backslash escapes, unquoted
// identifiers, numbers and paths, and include / include_if_exists / include_dir relative to the
// including file. One leniency: a line that ends right after `=` takes its value from the next
// line, so settings wrapped the way the seed's mail wrapped them are read as meant.

import { PolicyError, type SourceLoc } from "./errors.js";
import { join } from "node:path";
import { resolveIncluded, type PolicySource } from "./source.js";

export interface ConfSetting {
  /**
   * Lower-cased, as PostgreSQL folds setting names; a quoted suffix (a pg_seccomp extension:
   * `session_syscall_allow."Alice"`) keeps its case and its quotes.
   */
  name: string;
  /** As written in the file. */
  rawName?: string;
  value: string;
  loc: SourceLoc; // of the name
  valueLoc: SourceLoc; // of the first character inside the value
}

export interface ConfFile {
  settings: ConfSetting[];
  /** Every file read, in order, for permission checks. */
  files: string[];
  /**
   * Places that may hold policy files later, for permission checks too: include_if_exists
   * targets that do not exist now, and include_dir directories.
   */
  includePlaces: IncludePlace[];
}

export interface IncludePlace {
  path: string;
  kind: "file-or-missing" | "directory";
}

/** PostgreSQL's limit on include nesting (guc-file.l CONF_FILE_MAX_DEPTH). */
const MAX_DEPTH = 10;

export function readConf(path: string, source: PolicySource): ConfFile {
  const out: ConfFile = { settings: [], files: [], includePlaces: [] };
  readInto(path, source, out, [], undefined, false);
  return out;
}

/** One file's text, read as `name` (an include is refused: there is nothing to include from). */
export function readConfText(text: string, name = "<policy>"): ConfFile {
  return readConf(name, {
    read: (p) => {
      if (p !== name && !p.endsWith("/" + name)) throw Object.assign(new Error("no includes here"), { code: "ENOENT" });
      return text;
    },
    canonical: (p) => p,
    list: () => [],
    exists: () => false,
  });
}

function readInto(
  path: string,
  source: PolicySource,
  out: ConfFile,
  stack: string[],
  includedFrom: SourceLoc | undefined,
  ifExists: boolean,
): void {
  if (ifExists && !source.exists(path)) {
    out.includePlaces.push({ path, kind: "file-or-missing" });
    return;
  }
  let text: string;
  let canonical: string;
  try {
    canonical = source.canonical(path);
    text = source.read(path);
  } catch (e) {
    const code = (e as { code?: string }).code;
    const why =
      code === "ENOENT" ? "does not exist" :
      code === "EACCES" ? "cannot be read (permission denied)" :
      code === "EISDIR" ? "is a directory" :
      code === "ENOTREG" ? "is not a regular file (a device, FIFO or socket)" :
      code === "EFBIG" ? `is too large (${(e as Error).message.replace(/^it is /, "")})` :
      `cannot be read (${(e as Error).message})`;
    throw new PolicyError(
      includedFrom,
      `policy file "${path}" ${why}`,
      includedFrom ? "fix the include path, or use include_if_exists for an optional file" : "give the path of a readable policy file",
    );
  }
  if (stack.includes(canonical)) {
    throw new PolicyError(includedFrom, `include loop: "${path}" includes itself (${[...stack, canonical].join(" -> ")})`, "remove one of the include lines");
  }
  if (stack.length >= MAX_DEPTH) {
    throw new PolicyError(includedFrom, `includes are nested more than ${MAX_DEPTH} deep`, "flatten the include chain");
  }
  out.files.push(path);
  const lines = lexLines(path, text);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!;
    let { value, valueLoc } = line;
    if (value === undefined) {
      // The value continues on the next line (see the module comment).
      const next = lines[i + 1];
      if (line.sawEquals && next && next.name === undefined && next.value !== undefined) {
        value = next.value;
        valueLoc = next.valueLoc;
        i++;
      } else {
        throw new PolicyError(line.nameLoc, `setting "${line.name}" has no value`, `write ${line.name} = 'value'`);
      }
    }
    const name = foldName(line.name!);
    if (name === "include" || name === "include_if_exists") {
      const target = resolveIncluded(path, value);
      readInto(target, source, out, [...stack, canonical], line.nameLoc, name === "include_if_exists");
    } else if (name === "include_dir") {
      const dir = resolveIncluded(path, value);
      out.includePlaces.push({ path: dir, kind: "directory" });
      let names: string[];
      try {
        names = source.list(dir);
      } catch {
        throw new PolicyError(line.nameLoc, `include_dir "${value}" cannot be listed`, "give an existing directory");
      }
      // As PostgreSQL: only files ending in .conf, not starting with a dot, in name order.
      for (const n of names.filter((n) => n.endsWith(".conf") && !n.startsWith(".")).sort()) {
        readInto(join(dir, n), source, out, [...stack, canonical], line.nameLoc, false);
      }
    } else {
      out.settings.push({ name, rawName: line.name!, value, loc: line.nameLoc!, valueLoc: valueLoc! });
    }
  }
}

/** Lower-cases a setting name except a quoted last part (which keeps its case). */
export function foldName(name: string): string {
  const q = name.indexOf('."');
  return q < 0 ? name.toLowerCase() : name.slice(0, q).toLowerCase() + name.slice(q);
}

interface LexedLine {
  name?: string;
  nameLoc?: SourceLoc;
  sawEquals: boolean;
  value?: string;
  valueLoc?: SourceLoc;
}

const NAME_START = /[A-Za-z_\x80-\uffff]/;
const NAME_CHAR = /[A-Za-z0-9_$\x80-\uffff]/;
// guc-file.l's UNQUOTED_STRING and numbers: letters, digits and - . _ : / + (units, paths).
const UNQUOTED_CHAR = /[A-Za-z0-9_$\-.:/+\x80-\uffff]/;

/** Splits a file into name/value lines; a line holding only a value is kept for continuation. */
function lexLines(file: string, text: string): LexedLine[] {
  const result: LexedLine[] = [];
  const rows = text.split(/\r?\n/);
  rows.forEach((row, idx) => {
    const lineNo = idx + 1;
    const at = (col: number): SourceLoc => ({ file, line: lineNo, column: col + 1 });
    let i = 0;
    const skipSpace = () => {
      while (i < row.length && (row[i] === " " || row[i] === "\t" || row[i] === "\f" || row[i] === "\v")) i++;
    };
    const atEnd = () => i >= row.length || row[i] === "#";
    skipSpace();
    if (atEnd()) return;
    const line: LexedLine = { sawEquals: false };
    if (row[i] === "'") {
      // A line holding only a quoted value: the continuation of the previous line.
      const v = readQuoted(row, i, at);
      line.value = v.value;
      line.valueLoc = at(i + 1);
      i = v.end;
    } else {
      if (!NAME_START.test(row[i]!)) {
        throw new PolicyError(at(i), `syntax error near "${row[i]}"`, "each line is name = 'value', a comment starting with #, or blank");
      }
      const start = i;
      while (i < row.length && (NAME_CHAR.test(row[i]!) || (row[i] === "." && i + 1 < row.length && NAME_START.test(row[i + 1]!)))) i++;
      // A quoted last part (`session_syscall_allow."Alice"`): a role or database name that keeps its case.
      if (row[i] === "." && row[i + 1] === '"') {
        let j = i + 2;
        for (;;) {
          if (j >= row.length) throw new PolicyError(at(i + 1), "unterminated quoted name", 'close the name with a double quote; write "" for a quote inside it');
          if (row[j] === '"' && row[j + 1] === '"') j += 2;
          else if (row[j] === '"') break;
          else j++;
        }
        if (j === i + 2) throw new PolicyError(at(i + 1), "empty quoted name", "a quoted name holds at least one character");
        i = j + 1;
      }
      line.name = row.slice(start, i);
      line.nameLoc = at(start);
      skipSpace();
      if (row[i] === "=") {
        line.sawEquals = true;
        i++;
        skipSpace();
      }
      if (!atEnd()) {
        line.valueLoc = at(i + (row[i] === "'" ? 1 : 0));
        if (row[i] === "'") {
          const v = readQuoted(row, i, at);
          line.value = v.value;
          i = v.end;
        } else if (UNQUOTED_CHAR.test(row[i]!)) {
          const vs = i;
          while (i < row.length && UNQUOTED_CHAR.test(row[i]!)) i++;
          line.value = row.slice(vs, i);
        } else {
          throw new PolicyError(at(i), `syntax error near "${row[i]}" in the value of "${line.name}"`, "quote the value: name = 'value'");
        }
      }
    }
    skipSpace();
    if (!atEnd()) {
      throw new PolicyError(at(i), `syntax error near "${row.slice(i, i + 20)}": unexpected text after the value`, "one setting per line; quote values that contain spaces or commas");
    }
    result.push(line);
  });
  return result;
}

/** Reads a '...' string starting at `start`; returns the unescaped value and the index after it. */
const OCTAL = /[0-7]{1,3}/y;
const PLAIN = /[^'\\]+|[\s\S]/y;

function readQuoted(row: string, start: number, at: (col: number) => SourceLoc): { value: string; end: number } {
  let i = start + 1;
  let value = "";
  while (i < row.length) {
    const c = row[i]!;
    if (c === "'") {
      if (row[i + 1] === "'") {
        value += "'";
        i += 2;
        continue;
      }
      return { value, end: i + 1 };
    }
    if (c === "\\" && i + 1 < row.length) {
      const n = row[i + 1]!;
      const simple: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
      if (simple[n] !== undefined) {
        value += simple[n];
        i += 2;
      } else if (/[0-7]/.test(n)) {
        // Sticky match at i + 1: slicing the rest of the row per escape would be quadratic.
        OCTAL.lastIndex = i + 1;
        const m = OCTAL.exec(row)![0];
        value += String.fromCharCode(parseInt(m, 8));
        i += 1 + m.length;
      } else {
        value += n;
        i += 2;
      }
      continue;
    }
    // A run of ordinary characters at once (a long list is one long value).
    PLAIN.lastIndex = i;
    const run = PLAIN.exec(row)![0];
    value += run;
    i += run.length;
  }
  throw new PolicyError(at(start), "unterminated quoted string", "close the value with a single quote; write '' for a quote inside it");
}
