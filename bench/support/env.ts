/** A scenario's size from the environment, so a run can be scaled without editing the bench. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  if (!/^[0-9]+$/.test(raw) || Number(raw) < 1) throw new Error(`${name}: expected a whole number ≥ 1, got ${JSON.stringify(raw)}`)
  return Number(raw)
}
