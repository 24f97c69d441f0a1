// The PostgreSQL 15 starter profile against the broad workload (scripts/profile/workload.sh:
// pgbench, VACUUM FULL, parallel index builds, COPY, spilling sorts, parallel query, large
// objects, prepared transactions, LISTEN/NOTIFY, tablespaces, contrib extensions, logical
// replication, pg_basebackup and a streaming standby, archiving, reload) with the profile's
// default turned to kill: nothing is denied or logged. test/majors.test.ts does the same for the
// other majors.

import { test } from "node:test";
import { integrationSkip } from "./support/server.js";
import { profileWorkloadUnderKill } from "./support/profile-workload.js";

const skip = integrationSkip();

test("the starter profile with default kill runs the broad workload without a single denial or log entry", { skip, timeout: 600_000 }, async () => {
  await profileWorkloadUnderKill(15);
});
