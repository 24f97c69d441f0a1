// The assembler's lexer: a cursor over one source line (words, numbers, punctuation), and the
// error it raises with a 1-based line and column. The grammar is in asm.ts.

import { PgSeccompError } from "../errors.js";

/** An assembly error at a 1-based line and column. `message` is "line L, column C: detail". */
export class AsmError extends PgSeccompError {
  readonly line: number;
  readonly column: number;
  readonly detail: string;
  constructor(line: number, column: number, detail: string) {
    super("input", `line ${line}, column ${column}: ${detail}`);
    this.name = "AsmError";
    this.line = line;
    this.column = column;
    this.detail = detail;
  }
}

/** A cursor over one source line. Columns are 1-based in errors. */
export class Line {
  pos = 0;
  constructor(
    readonly text: string,
    readonly lineNo: number,
  ) {}

  error(detail: string, pos: number = this.pos): AsmError {
    return new AsmError(this.lineNo, pos + 1, detail);
  }

  ws(): void {
    while (this.pos < this.text.length && (this.text[this.pos] === " " || this.text[this.pos] === "\t")) this.pos++;
  }

  atEnd(): boolean {
    this.ws();
    return this.pos >= this.text.length;
  }

  peek(): string {
    this.ws();
    return this.text[this.pos] ?? "";
  }

  eat(ch: string): boolean {
    if (this.peek() === ch) {
      this.pos++;
      return true;
    }
    return false;
  }

  /** A short description of what is at the cursor, for "expected X, found Y". */
  found(): string {
    this.ws();
    if (this.pos >= this.text.length) return "end of line";
    const m = /^[^\s,]+/.exec(this.text.slice(this.pos));
    return `"${m ? m[0] : this.text[this.pos]}"`;
  }

  expect(ch: string, what: string): void {
    if (!this.eat(ch)) throw this.error(`expected ${what}, found ${this.found()}`);
  }

  /** Identifier-like word at the cursor ([A-Za-z_.][A-Za-z0-9_.]*), or undefined. */
  word(): string | undefined {
    this.ws();
    const m = /^[A-Za-z_.][A-Za-z0-9_.]*/.exec(this.text.slice(this.pos));
    if (!m) return undefined;
    this.pos += m[0].length;
    return m[0];
  }

  /** Looks at the word at the cursor without consuming it. */
  peekWord(): string | undefined {
    const save = this.pos;
    const w = this.word();
    this.pos = save;
    return w;
  }

  /** Unsigned number (decimal or 0x hex) at the cursor, or undefined; not range-checked. */
  number(): number | undefined {
    this.ws();
    const m = /^(0[xX][0-9a-fA-F]+|[0-9]+)(?![A-Za-z0-9_])/.exec(this.text.slice(this.pos));
    if (!m) return undefined;
    this.pos += m[0].length;
    return Number(m[0]);
  }

  /** A number that must be present and at most `max`. */
  bounded(max: number, what: string): number {
    this.ws();
    const start = this.pos;
    const v = this.number();
    if (v === undefined) throw this.error(`expected ${what}, found ${this.found()}`);
    if (v > max) throw this.error(`${what} ${this.text.slice(start, this.pos)} is too large (maximum ${max})`, start);
    return v;
  }

  /** An immediate: optional '#', optional '-', number; returned as unsigned 32-bit. */
  imm(what = "a number (decimal or 0x hex)"): number {
    this.ws();
    const start = this.pos;
    this.eat("#");
    this.ws();
    const neg = this.eat("-");
    const v = this.number();
    if (v === undefined) throw this.error(`expected ${what}, found ${this.found()}`, start);
    const lit = this.text.slice(start, this.pos);
    if (neg) {
      if (v > 0x80000000) throw this.error(`value ${lit} does not fit in 32 bits (minimum -2147483648)`, start);
      return (0x100000000 - v) >>> 0;
    }
    if (v > 0xffffffff) throw this.error(`value ${lit} does not fit in 32 bits (maximum 0xffffffff)`, start);
    return v;
  }

  /** True (and consumed) when the next word is exactly `w` (case-insensitive). */
  eatWord(w: string): boolean {
    const save = this.pos;
    const got = this.word();
    if (got !== undefined && got.toLowerCase() === w) return true;
    this.pos = save;
    return false;
  }
}
