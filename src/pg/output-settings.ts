/**
 * Session settings that fix PostgreSQL's text output (docs/PROTOCOL.md: Messages). Snapshot queries
 * and the replication connection both use them, so a value reads the same whichever path it
 * took to the client.
 */
export const OUTPUT_SETTINGS: Readonly<Record<string, string>> = {
  DateStyle: 'ISO,DMY',
  TimeZone: 'UTC',
  IntervalStyle: 'iso_8601',
  extra_float_digits: '1',
  bytea_output: 'hex',
}

/** For the `options` startup parameter of a connection. */
export function outputSettingsOptions(): string {
  return Object.entries(OUTPUT_SETTINGS)
    .map(([name, value]) => `-c ${name}=${value}`)
    .join(' ')
}
