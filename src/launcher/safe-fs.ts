// The launcher's safe file access lives in src/host/safe-fs.ts (the run-state readers in host/
// and inspect/ use it too); this name stays for the launcher's imports.
export * from "../host/safe-fs.js";
