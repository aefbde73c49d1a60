/**
 * Loaded into a Sluice child with `BENCH_CHILD_NODE_OPTIONS="--import ./bench/support/allocation-profile.ts"`
 * (`BENCH_ALLOCATION_DIR`: where to write): samples every allocation, also of objects already
 * collected, and writes `allocation.<pid>.heapprofile` as the process exits. Node's `--heap-prof`
 * keeps only what is still alive at the exit, which for shape creation is not where the
 * allocation rate (and the garbage collector's time) comes from. `bench/profile-top.ts` reads it.
 */
import { writeFileSync } from 'node:fs'
import { Session } from 'node:inspector'
import { join } from 'node:path'

const dir = process.env['BENCH_ALLOCATION_DIR'] ?? '.'
const session = new Session()
session.connect()
session.post('HeapProfiler.enable')
session.post('HeapProfiler.startSampling', { samplingInterval: 16_384, includeObjectsCollectedByMajorGC: true, includeObjectsCollectedByMinorGC: true })
process.once('exit', () => {
  // A session on the main thread answers synchronously, so this runs before the process is gone.
  session.post('HeapProfiler.stopSampling', (error, result) => {
    if (!error) writeFileSync(join(dir, `allocation.${process.pid}.heapprofile`), JSON.stringify(result.profile))
  })
})
