/** What the subquery tests compare a client's rows with: the tasks table's answer, as the wire's text. */
import type pg from 'pg'

/** The tasks `where` selects, in the order and text a tag-aware materializer (`tagged-rows.ts`) prints them. */
export async function tasksAnswer(pool: pg.Pool, where: string): Promise<string> {
  const { rows } = await pool.query<{ v: Record<string, string> }>(
    `SELECT json_build_object('id', id::text, 'project_id', project_id::text, 'owner', owner, 'done', format('%s', done)) AS v
       FROM tasks WHERE ${where} ORDER BY ('"public"."tasks"/"' || id || '"')`,
  )
  return JSON.stringify(rows.map((row) => row.v))
}

/** Keeps the wire's text: the tests compare with PostgreSQL's text output. */
export const TEXT_PARSER = { int4: (v: string) => v, bool: (v: string) => v }
