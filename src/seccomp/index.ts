// The seccomp ABI, once: return values and the stacking rule, AUDIT_ARCH values, seccomp_data.
// Pure; imported by anyone, imports nothing outside this folder.

export * from "./actions.js";
export * from "./arch.js";
export * from "./data.js";
