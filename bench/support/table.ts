/**
 * The benchmark table and the COPY baseline: every scenario that compares with PostgreSQL
 * reads the same columns as JSON text, which is what Sluice serves.
 */
import pg from 'pg'
import { to as copyTo } from 'pg-copy-streams'

/** `user_id` spreads rows over 10,000 users, for `user_id = N` shapes. */
export const USERS = 10_000

export async function createItemsTable(pool: pg.Pool, table = 'items', options: { userIndex?: boolean } = {}): Promise<void> {
  await pool.query(`CREATE TABLE ${table} (
    id bigint PRIMARY KEY,
    user_id integer NOT NULL,
    title text NOT NULL,
    amount numeric(12,2) NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
  )`)
  if (options.userIndex) await pool.query(`CREATE INDEX ON ${table} (user_id)`)
}

/** Inserts rows `from..to` in one statement (one transaction); row `g` belongs to user `g % users`. */
export async function insertItems(db: pg.Pool | pg.Client, from: number, to: number, table = 'items', users = USERS): Promise<void> {
  await db.query(
    `INSERT INTO ${table} (id, user_id, title, amount)
     SELECT g, g % ${users}, 'item ' || md5(g::text), (g % 100000) / 100.0 FROM generate_series($1::bigint, $2::bigint) g`,
    [from, to],
  )
}

/** The same rows as JSON text, the way a baseline client would get them straight from PostgreSQL. */
export function jsonRowsSql(table = 'items', where = 'true'): string {
  return `SELECT json_build_object('id', id, 'user_id', user_id, 'title', title, 'amount', amount, 'created_at', created_at)::text FROM ${table} WHERE ${where}`
}

/** Streams `COPY (<select>) TO STDOUT` to nowhere; returns the bytes received. */
export async function copyOut(url: string, select: string): Promise<number> {
  const client = new pg.Client({ connectionString: url })
  await client.connect()
  try {
    const stream = client.query(copyTo(`COPY (${select}) TO STDOUT`))
    let bytes = 0
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => (bytes += chunk.length))
      stream.on('end', () => resolve())
      stream.on('error', reject)
    })
    return bytes
  } finally {
    await client.end()
  }
}
