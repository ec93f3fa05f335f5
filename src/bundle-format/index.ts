// The bundle format's public surface: its names, bundle.json's schema, the checksum grammar, the
// one reader (tar, split parts, directory) and the one check. src/bundle writes with it;
// src/load and `bundle verify` read with it.
export {
  openBundleArchive,
  findParts,
  compressionOf,
  compressionOfFile,
  type ArchiveEntry,
  type BundleArchive,
  type Compression,
} from './archive.ts';
export { openBundleStream, StreamedArchive, type BundleStream, type StreamedEntry } from './stream.ts';
export {
  checkBundle,
  checkBundleChecksums,
  checkBundleContents,
  checkBundleStream,
  hashEntry,
  readChecksums,
  StreamCheck,
  type BundleCheckResult,
  type CheckOptions,
  type ChecksumDifference,
  type ChecksumResult,
} from './check.ts';
export { formatChecksums, parseChecksums, pathProblem } from './checksums.ts';
export {
  encodeSignature,
  isBundleSigned,
  keyFingerprint,
  pemLabel,
  readVerifyKey,
  requireP256,
  verifyBundleSignature,
  verifyChecksumsSignature,
  type SignatureCheck,
  type VerifyKey,
} from './signature.ts';
export { BundleSource, type BundleSourceOptions, type LayoutImage } from './layout.ts';
export {
  BLOB_PATH_RE,
  BUNDLE_INDEX_FILE,
  CHECKSUMS_FILE,
  SIGNATURE_FILE,
  bundleTarOrder,
  LAYOUT_DIR,
  LAYOUT_INDEX_FILE,
  SITE_DEFAULT_MARKER,
  SITE_PATHS,
  blobPath,
  hostPlatform,
  isSitePath,
  isWorkFileName,
  parseSiteToolPath,
  siteToolPath,
  siteToolsFirst,
  SITE_PLATFORMS,
  SITE_TOOLS,
  SITE_TOOLS_DIR,
  type SiteTool,
} from './names.ts';
export {
  BUNDLE_FORMAT_VERSION,
  BundleIndexSchema,
  parseBundleIndex,
  serializeBundleIndex,
  type AbsentEntry,
  type BundleBase,
  type BundleChartEntry,
  type BundleFileEntry,
  type BundleImageEntry,
  type BundleIndex,
  type BundleReferrer,
  type SiteToolsIndex,
} from './schema.ts';
export {
  bundleIdentity,
  looksLikeReceipt,
  parseReceipt,
  receiptUrl,
  RECEIPT_FILE,
  RECEIPT_FORMAT_VERSION,
  serializeReceipt,
  type Receipt,
} from './receipt.ts';
export { absentFor, absentIndex, carriedGraph, type ImageGraph } from './base.ts';
