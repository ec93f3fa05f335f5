// The site receipt (`sealift load --receipt FILE`, and <extract-to>/sealift-receipt.json): what one
// load verified present at the site registry, per repository, so that `sealift bundle --since
// RECEIPT` carries only what the site lacks. One zod schema for its writer (src/load) and its
// reader (src/bundle). The registry is a bare HOST[:PORT] and every URL is stored without its
// userinfo: a receipt travels back across the gap and must hold no credentials.
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { SealiftError } from '../errors.ts';
import { redactUrl } from '../redact.ts';

export const RECEIPT_FILE = 'sealift-receipt.json';
export const RECEIPT_KIND = 'sealift-receipt';
export const RECEIPT_FORMAT_VERSION = 1;

const sha256Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'a sha256:<64 hex> digest');
const sha256Hex = z.string().regex(/^[a-f0-9]{64}$/, '64 lowercase hex');
/** HOST[:PORT], nothing else: no scheme, no userinfo, no path */
const registryHost = z
  .string()
  .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/, 'a bare HOST[:PORT] (no scheme, no credentials)');

export const ReceiptSchema = z.object({
  kind: z.literal(RECEIPT_KIND),
  version: z.literal(RECEIPT_FORMAT_VERSION),
  createdAt: z.string(),
  tool: z.object({ name: z.literal('sealift'), version: z.string() }),
  registry: z.object({ host: registryHost }),
  /** how the load named the images at the site (a bundle --since maps its images the same way) */
  scheme: z.enum(['host-swap', 'scoped']),
  /** the bundle this load read */
  bundle: z.object({
    /** sha256 of its bundle.json: the bundle's identity, which an incremental bundle names as its base */
    identity: sha256Digest,
    /** its file or directory name (no path) */
    name: z.string(),
    createdAt: z.string(),
    environment: z.string().nullable(),
    /** the identity of its own base, when it was incremental */
    base: sha256Digest.nullable(),
  }),
  /** every image the load checked at the site: source reference, site reference, digest */
  images: z.array(z.object({ source: z.string(), target: z.string(), digest: sha256Digest })),
  /** site repository -> every manifest and blob digest a HEAD found there after the load */
  repositories: z.record(z.string(), z.object({ manifests: z.array(sha256Digest), blobs: z.array(sha256Digest) })),
  /** the site tools the bundle carried (or relied on from its base), by tar path */
  siteTools: z.array(z.object({ path: z.string(), sha256: sha256Hex })),
  /** the site files (charts, values, release files, lists) the bundle carried; url without credentials */
  files: z.array(z.object({ path: z.string(), sha256: sha256Hex, url: z.string().optional() })),
});

export type Receipt = z.infer<typeof ReceiptSchema>;

/** A bundle's identity: the sha256 of its bundle.json bytes (checksums.sha256 lists the same). */
export function bundleIdentity(bundleJson: Buffer | string): string {
  return `sha256:${createHash('sha256').update(bundleJson).digest('hex')}`;
}

/** A URL as a receipt may store it: no userinfo, no query. */
export function receiptUrl(url: string): string {
  return redactUrl(url);
}

function invalid(location: string, message: string, hint?: string): SealiftError {
  return new SealiftError('USAGE', `${location}: ${message}`, {
    hint: hint ?? `Give the ${RECEIPT_FILE} that \`sealift load --receipt\` (or --extract-to) wrote, unchanged.`,
    details: { file: location },
  });
}

/** True when the parsed JSON says it is a receipt (of any version): a reader then parses it as one. */
export function looksLikeReceipt(raw: unknown): boolean {
  return !!raw && typeof raw === 'object' && (raw as Record<string, unknown>).kind === RECEIPT_KIND;
}

/** Reads a receipt: its version first (naming the one found and the one read), then every field. */
export function parseReceipt(raw: unknown, location: string): Receipt {
  if (!looksLikeReceipt(raw)) throw invalid(location, `is not a sealift receipt (no "kind": "${RECEIPT_KIND}")`);
  const version = (raw as Record<string, unknown>).version;
  if (version !== RECEIPT_FORMAT_VERSION)
    throw invalid(
      location,
      `is a receipt of format version ${JSON.stringify(version)}; this sealift reads version ${RECEIPT_FORMAT_VERSION}`,
      typeof version === 'number' && version > RECEIPT_FORMAT_VERSION
        ? 'The receipt was written by a newer sealift: make the bundle with that version.'
        : 'Load the last full bundle again with this sealift and --receipt, then bundle --since that receipt.',
    );
  const parsed = ReceiptSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw invalid(
      location,
      `is not a valid receipt: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : ''}`,
    );
  }
  return parsed.data;
}

/** The writer's side: what is written must read back (a failure here is a bug in the writer). */
export function serializeReceipt(receipt: Receipt): string {
  const parsed = ReceiptSchema.safeParse(receipt);
  if (!parsed.success)
    throw new SealiftError(
      'INTERNAL',
      `the receipt about to be written does not match its schema: ${parsed.error.message}`,
    );
  return `${JSON.stringify(receipt, null, 2)}\n`;
}
