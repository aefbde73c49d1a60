/**
 * Reads a request body as text, refusing it (400) once it passes `maxBytes`, whether or not it
 * declared a length: a client cannot make Sluice buffer more than that.
 */
import { InvalidRequestError } from '../errors.js'
import { SUBSET_BODY } from '../protocol/constants.js'

export async function readCappedBody(request: Request, maxBytes: number): Promise<string> {
  const tooLarge = () => InvalidRequestError.of(SUBSET_BODY.nested, `the request body is larger than ${maxBytes} bytes`)
  const declared = Number(request.headers.get('content-length') ?? '0')
  if (declared > maxBytes) throw tooLarge()
  if (!request.body) return ''
  const reader = request.body.getReader()
  const chunks: Uint8Array[] = []
  let total = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    total += value.byteLength
    if (total > maxBytes) {
      await reader.cancel()
      throw tooLarge()
    }
    chunks.push(value)
  }
  return Buffer.concat(chunks).toString('utf8')
}
