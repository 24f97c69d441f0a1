// Reading input that can be larger than a string may be (a 1 GB audit.log): a file, or standard
// input for "-", in 1 MiB chunks.

import { closeSync, openSync, readSync } from "node:fs";

export function* readChunks(file: string): Generator<Buffer> {
  const fd = file === "-" ? 0 : openSync(file, "r");
  const buf = Buffer.alloc(1 << 20);
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EAGAIN") {
          // Standard input may be non-blocking: wait a moment without spinning.
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 10);
          continue;
        }
        if (code === "EOF") return;
        throw e;
      }
      if (n === 0) return;
      yield buf.subarray(0, n);
    }
  } finally {
    if (fd !== 0) closeSync(fd);
  }
}
