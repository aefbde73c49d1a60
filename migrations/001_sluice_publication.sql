-- Sluice's publication, created by a DBA.
--
-- When: Sluice creates its publication and adds tables to it by itself when its database
-- role may. Creating a publication needs the CREATE privilege on the database; adding a table
-- needs ownership of both the publication and the table. When Sluice's role lacks these,
-- its 400 response for that table names this file.
--
-- How (as a superuser, or as the owner of the table and of the publication):
--   psql "$DATABASE_URL" -v publication=sluice -v schema=public -v table=items \
--        -f migrations/001_sluice_publication.sql
-- `publication` must match Sluice's SLUICE_PUBLICATION setting (default `sluice`). Without
-- `-v table=...` only the publication is created; `schema` defaults to public.
-- Safe to run again: it only does what is missing.

\set ON_ERROR_STOP on
\if :{?schema}
\else
  \set schema public
\endif

-- Publishes every kind of change Sluice needs, starting with no tables.
SELECT format('CREATE PUBLICATION %I WITH (publish = %L)', :'publication', 'insert, update, delete, truncate')
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = :'publication')
\gexec

-- An existing publication that leaves out some kind of change would leave shapes stale.
SELECT format('ALTER PUBLICATION %I SET (publish = %L)', pubname, 'insert, update, delete, truncate')
  FROM pg_catalog.pg_publication
 WHERE pubname = :'publication' AND NOT (pubinsert AND pubupdate AND pubdelete AND pubtruncate)
\gexec

\if :{?table}
  SELECT format('ALTER PUBLICATION %I ADD TABLE %I.%I', :'publication', :'schema', :'table')
   WHERE NOT EXISTS (
     SELECT 1 FROM pg_catalog.pg_publication_rel r
       JOIN pg_catalog.pg_publication p ON p.oid = r.prpubid
      WHERE p.pubname = :'publication'
        AND r.prrelid = to_regclass(format('%I.%I', :'schema', :'table')))
  \gexec
\endif
