/**
 * The soak's tables and its history. Every writer transaction ends by taking the next value of
 * one clock row: the row lock is held until commit, so clock order is commit order (and commit
 * LSN order) for every transaction that wrote to a served table. Triggers copy each row change,
 * with its transaction's xid, into `soak_history`: the checker rebuilds any table's state at any
 * point of the commit order, or at any snapshot (by xid visibility), from these two tables.
 */
import type pg from 'pg'

/** Served tables and the columns the checker compares (a schema change adds and drops others). */
export const TABLES = {
  accounts: ['id', 'owner', 'v', 'note'],
  ledger: ['id', 'account', 'amount'],
  bulk: ['id', 'grp', 'payload'],
  scratch: ['id', 'v'],
} as const
export type TableName = keyof typeof TABLES

export const CREATE_TABLE: Record<TableName, string> = {
  accounts: `CREATE TABLE accounts (id bigint PRIMARY KEY, owner int NOT NULL, v int NOT NULL, note text)`,
  ledger: `CREATE TABLE ledger (id bigint PRIMARY KEY, account bigint NOT NULL, amount int NOT NULL)`,
  bulk: `CREATE TABLE bulk (id bigint PRIMARY KEY, grp int NOT NULL, payload text NOT NULL)`,
  scratch: `CREATE TABLE scratch (id bigint PRIMARY KEY, v int NOT NULL)`,
}

/** The row that each recovery canary updates (in `accounts`, outside the writers' ids). */
export const CANARY_ID = 0

export function historyTriggers(table: TableName): string {
  return `CREATE TRIGGER ${table}_history AFTER INSERT OR UPDATE OR DELETE ON ${table} FOR EACH ROW EXECUTE FUNCTION soak_record();
    CREATE TRIGGER ${table}_truncate AFTER TRUNCATE ON ${table} FOR EACH STATEMENT EXECUTE FUNCTION soak_record();`
}

export async function createSchema(pool: pg.Pool): Promise<void> {
  await pool.query(`
    CREATE TABLE soak_clock (n bigint NOT NULL);
    INSERT INTO soak_clock VALUES (0);
    CREATE TABLE soak_tx (clock bigint PRIMARY KEY, xid xid8 NOT NULL UNIQUE, kind text NOT NULL);
    CREATE TABLE soak_history (seq bigserial PRIMARY KEY, xid xid8 NOT NULL, tbl text NOT NULL, op text NOT NULL, id bigint, row jsonb);
    CREATE INDEX ON soak_history (xid);
    CREATE FUNCTION soak_record() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF TG_OP = 'TRUNCATE' THEN
        INSERT INTO soak_history (xid, tbl, op) VALUES (pg_current_xact_id(), TG_TABLE_NAME, 'reset');
      ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO soak_history (xid, tbl, op, id) VALUES (pg_current_xact_id(), TG_TABLE_NAME, 'delete', OLD.id);
      ELSE
        INSERT INTO soak_history (xid, tbl, op, id, row) VALUES (pg_current_xact_id(), TG_TABLE_NAME, 'write', NEW.id,
          (SELECT jsonb_object_agg(key, value) FROM jsonb_each_text(to_jsonb(NEW))));
      END IF;
      RETURN NULL;
    END $$;
  `)
  for (const table of Object.keys(TABLES) as TableName[]) {
    await pool.query(CREATE_TABLE[table])
    await pool.query(historyTriggers(table))
  }
  await pool.query(`BEGIN; INSERT INTO accounts VALUES (${CANARY_ID}, 0, 0, 'canary'); ${clockStatement('seed')}; COMMIT`)
}

/** The last statement of every writer transaction. */
export function clockStatement(kind: string): string {
  return `WITH c AS (UPDATE soak_clock SET n = n + 1 RETURNING n) INSERT INTO soak_tx SELECT n, pg_current_xact_id(), '${kind}' FROM c`
}
