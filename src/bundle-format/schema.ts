// bundle.json: one zod schema for the writer (src/bundle) and every reader (load, bundle verify).
// Every field is required but `registry` and `siteTools`, which bundles of format version 1 made
// before they were recorded lack, and `base`, which only an incremental bundle has.
// `version` is checked first and on its own, so a bundle from another format version is refused
// by its number, not by whichever field happens to differ.
import { z } from 'zod';
import { SealiftError } from '../errors.ts';
import { BUNDLE_INDEX_FILE, SITE_TOOLS } from './names.ts';

export const BUNDLE_FORMAT_VERSION = 1;

const sha256Digest = z.string().regex(/^sha256:[a-f0-9]{64}$/, 'a sha256:<64 hex> digest');
const sha256Hex = z.string().regex(/^[a-f0-9]{64}$/, '64 lowercase hex');
const size = z.number().int().nonnegative();
const scheme = z.enum(['host-swap', 'scoped']);

/** an object that refers to a manifest of the image (src/oci/referrers.ts), carried in images/ */
export const BundleReferrerSchema = z.object({
  /** the manifest it refers to: the image's root or a child it keeps */
  subject: sha256Digest,
  /** subject: an OCI 1.1 referrer (its manifest names the subject); tag: a cosign tag object */
  kind: z.enum(['subject', 'tag']),
  /** for kind tag: sha256-<hex>.sig, .att or .sbom */
  tag: z
    .string()
    .regex(/^sha256-[a-f0-9]{64}\.(sig|att|sbom)$/)
    .optional(),
  descriptor: z.object({
    mediaType: z.string(),
    digest: sha256Digest,
    size,
    artifactType: z.string().optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
});

export const BundleImageEntrySchema = z.object({
  /** the source reference (normalized), as in images/index.json io.sealift.source */
  reference: z.string().min(1),
  releases: z.array(z.string()),
  /** what the site resolves the tag to, and that manifest's media type and size */
  digest: sha256Digest,
  mediaType: z.string(),
  size,
  /** the digest upstream served for the reference (differs when an index was reduced) */
  sourceDigest: sha256Digest,
  selection: z.enum(['exact', 'platform', 'reduced-index']),
  platforms: z.array(z.string()),
  /** layers and configs of this image, and their bytes */
  blobs: size,
  bytes: size,
  /** what refers to the image (signatures, attestations, SBOMs); absent: not looked for (--no-referrers, older bundles) */
  referrers: z.array(BundleReferrerSchema).optional(),
});

export const BundleChartEntrySchema = z.object({
  release: z.string(),
  chart: z.string(),
  version: z.string(),
  source: z.string(),
  path: z.string().min(1),
  sha256: sha256Hex,
  size,
});

export const BundleFileEntrySchema = z.object({
  release: z.string().optional(),
  path: z.string().min(1),
  url: z.string().optional(),
  sha256: sha256Hex,
  size,
});

/** the tools carried for the site (bin/<os>-<arch>/<tool>, the first entries of the tar) */
export const SiteToolsIndexSchema = z.object({
  platforms: z.array(z.string()),
  files: z.array(
    z.object({ path: z.string().min(1), platform: z.string(), tool: z.enum(SITE_TOOLS), size, sha256: sha256Hex }),
  ),
});

/**
 * An incremental bundle's base (`bundle --since`): the bundle whose load the site already holds,
 * and everything this bundle relies on the site having instead of carrying it. Absent in a full
 * bundle. The load checks every `absent` entry at the target before it pushes anything.
 */
export const BundleBaseSchema = z.object({
  /** sha256 of the base bundle's bundle.json: the bundle to load first when something is missing */
  identity: sha256Digest,
  /** what --since read: a site receipt, or the previous bundle (tar, directory or its bundle.json) */
  from: z.enum(['receipt', 'bundle']),
  /** the base bundle's name, creation time and environment, to name it in messages */
  name: z.string(),
  createdAt: z.string(),
  environment: z.string().nullable(),
  /** receipt: the site registry it describes (null: the base is a bundle) */
  registry: z.string().nullable(),
  /** the base's own base, when the base was incremental too: what it did not carry, that one did */
  parent: sha256Digest.nullable().optional(),
  /** manifests and blobs the images reference and this bundle does not carry */
  absent: z.array(
    z.object({
      digest: sha256Digest,
      size,
      mediaType: z.string(),
      kind: z.enum(['manifest', 'blob']),
      /** the images (source references, as bundle.json lists them) that reference it */
      images: z.array(z.string()).min(1),
      /** site repositories the receipt saw it in: where load mounts a blob from */
      from: z.array(z.string()),
    }),
  ),
  /** site tools unchanged since the base (same sha256), so not carried */
  siteTools: z.array(z.object({ path: z.string().min(1), sha256: sha256Hex })),
});

export const BundleIndexSchema = z.object({
  version: z.literal(BUNDLE_FORMAT_VERSION),
  tool: z.object({ name: z.literal('sealift'), version: z.string() }),
  createdAt: z.string(),
  environment: z.string().nullable(),
  /** the environment's registry (null: none, or an image-list bundle): the host the carried values
   *  name and the naming scheme they use; load defaults --scheme from it and checks --registry.
   *  Absent in bundles made before it was recorded. */
  registry: z.object({ host: z.string(), plainHttp: z.boolean(), scheme }).nullable().optional(),
  platforms: z.union([z.array(z.string()), z.literal('all')]),
  charts: z.array(BundleChartEntrySchema),
  files: z.array(BundleFileEntrySchema),
  /** null: left out (--no-site-tools); absent in bundles made before tools were carried */
  siteTools: SiteToolsIndexSchema.nullable().optional(),
  images: z.array(BundleImageEntrySchema),
  /** an incremental bundle's base (bundle --since); absent: a full bundle */
  base: BundleBaseSchema.optional(),
  totals: z.object({
    images: size,
    /** unique blobs stored */
    blobs: size,
    blobBytes: size,
    /** what the images would take stored one by one */
    imageBytes: size,
    savedBySharing: z.number().int(),
    charts: size,
    files: size,
  }),
});

export type BundleIndex = z.infer<typeof BundleIndexSchema>;
export type BundleImageEntry = z.infer<typeof BundleImageEntrySchema>;
export type BundleReferrer = z.infer<typeof BundleReferrerSchema>;
export type BundleChartEntry = z.infer<typeof BundleChartEntrySchema>;
export type BundleFileEntry = z.infer<typeof BundleFileEntrySchema>;
export type SiteToolsIndex = z.infer<typeof SiteToolsIndexSchema>;
export type BundleBase = z.infer<typeof BundleBaseSchema>;
export type AbsentEntry = BundleBase['absent'][number];

function invalid(location: string, message: string, hint?: string): SealiftError {
  return new SealiftError('BUNDLE_INVALID', `${location}: ${BUNDLE_INDEX_FILE} ${message}`, {
    hint:
      hint ??
      'The bundle was altered or damaged after it was made. Copy it again, or make it again with `sealift bundle`.',
    details: { file: BUNDLE_INDEX_FILE },
  });
}

/** Reads bundle.json: refuses anything but JSON of this format version with every field in place. */
export function parseBundleIndex(bytes: Buffer | string, location: string): BundleIndex {
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString());
  } catch (e) {
    throw invalid(location, `is not valid JSON: ${(e as Error).message}`);
  }
  const version = raw && typeof raw === 'object' ? (raw as Record<string, unknown>).version : undefined;
  if (version !== BUNDLE_FORMAT_VERSION) {
    throw invalid(
      location,
      version === undefined
        ? 'has no format version'
        : `has format version ${JSON.stringify(version)}; this sealift reads version ${BUNDLE_FORMAT_VERSION}`,
      typeof version === 'number' && version > BUNDLE_FORMAT_VERSION
        ? 'The bundle was made by a newer sealift: load it with that version.'
        : undefined,
    );
  }
  const parsed = BundleIndexSchema.safeParse(raw);
  if (!parsed.success) {
    const first = parsed.error.issues[0];
    throw invalid(
      location,
      `is not a valid bundle index: ${first ? `${first.path.join('.') || '(root)'}: ${first.message}` : ''}`,
    );
  }
  return parsed.data;
}

/** The writer's side: what is written must read back (a failure here is a bug in the writer). */
export function serializeBundleIndex(index: BundleIndex): string {
  const parsed = BundleIndexSchema.safeParse(index);
  if (!parsed.success) {
    throw new SealiftError(
      'INTERNAL',
      `the ${BUNDLE_INDEX_FILE} about to be written does not match its schema: ${parsed.error.message}`,
    );
  }
  return `${JSON.stringify(index, null, 2)}\n`;
}
