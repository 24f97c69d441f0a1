// audit2allow: the syscalls that seccomp's audit records name, as an allow list.
//
// The seed's learning procedure runs the server with `log`, lets the kernel write one SECCOMP
// audit record per logged call, and turns the records into a list with get_syscalls.sh. This
// step is three modules: the record parser (src/host/audit-records.ts, shared with `run`),
// the analysis (audit-analyze.ts) and the output (audit-render.ts); the command with its
// options, messages and exit codes is src/cli/audit2allow.ts. All pure: text in, data out.

export * from "../host/audit-records.js";
export * from "./audit-analyze.js";
export * from "./audit-render.js";
