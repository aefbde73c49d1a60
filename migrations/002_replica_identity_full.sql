-- REPLICA IDENTITY FULL for one table, set by a DBA.
--
-- When: Sluice needs the whole old row of every update and delete (to tell whether a row left
-- a shape, and for `replica=full`), so it makes each table it serves REPLICA IDENTITY FULL.
-- Only the table's owner may do that; when Sluice's role does not own the table, its 400
-- response for that table names this file.
--
-- How (as a superuser or the table's owner):
--   psql "$DATABASE_URL" -v schema=public -v table=items -f migrations/002_replica_identity_full.sql
-- `schema` defaults to public. For a partitioned table every existing partition is set too
-- (PostgreSQL does not pass the setting down); partitions created later need the same.
-- Safe to run again.

\set ON_ERROR_STOP on
\if :{?schema}
\else
  \set schema public
\endif

ALTER TABLE :"schema".:"table" REPLICA IDENTITY FULL;

SELECT format('ALTER TABLE %I.%I REPLICA IDENTITY FULL', n.nspname, c.relname)
  FROM pg_catalog.pg_partition_tree(format('%I.%I', :'schema', :'table')::regclass) t
  JOIN pg_catalog.pg_class c ON c.oid = t.relid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND c.relreplident <> 'f'
\gexec
