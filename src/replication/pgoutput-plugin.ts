/**
 * `pg-logical-replication` plugin that starts pgoutput v1 and decodes with our own decoder
 * (`pgoutput-decoder.ts`). The base class is not re-exported by the package's index.
 */
import type pg from 'pg'
import { AbstractPlugin } from 'pg-logical-replication/dist/output-plugins/abstract.plugin.js'
import { quoteIdent } from '../pg/sql.js'
import { decodePgoutput } from './pgoutput-decoder.js'
import type { PgoutputMessage } from './pgoutput-messages.js'

export class TextPgoutputPlugin extends AbstractPlugin<{ publication: string }> {
  get name(): string {
    return 'pgoutput'
  }

  parse(buffer: Buffer): PgoutputMessage {
    return decodePgoutput(buffer)
  }

  start(client: pg.Client, slotName: string, lastLsn: string): Promise<unknown> {
    const publication = this.options.publication.replaceAll("'", "''")
    return client.query(
      `START_REPLICATION SLOT ${quoteIdent(slotName)} LOGICAL ${lastLsn} (proto_version '1', publication_names '${quoteIdent(publication)}')`,
    )
  }
}
