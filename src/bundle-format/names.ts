// The names inside a bundle: what `sealift bundle` writes and every reader looks for.
//
//   checksums.sha256     sha256 of every other file (checksums.ts), first in the tar, so a
//                        single read of the tar (a pipe) can check trust before anything else
//   checksums.sha256.sig its signature, when signed (cosign sign-blob format), right after it
//   bundle.json          what the bundle holds (schema.ts), next
//   bin/<os>-<arch>/     the site tools, then everything else
//   images/              one OCI image layout: oci-layout, index.json, blobs/sha256/<hex>
//   helmfile.yaml(.gotmpl), values/, charts/, releases/, imagelists/, environments/: the site dir
//
// A bundle holds regular files and directories only: no symlinks, hard links, devices or FIFOs.
import type { Digest } from '../oci/reference.ts';

export const BUNDLE_INDEX_FILE = 'bundle.json';
export const CHECKSUMS_FILE = 'checksums.sha256';
/** The signature of CHECKSUMS_FILE; not listed in it (it signs it). */
export const SIGNATURE_FILE = 'checksums.sha256.sig';
export const LAYOUT_DIR = 'images';
export const LAYOUT_INDEX_FILE = `${LAYOUT_DIR}/index.json`;

/** `images/blobs/sha256/<64 hex>`: a blob's path is its digest; group 1 is the hex. */
export const BLOB_PATH_RE = /^images\/blobs\/sha256\/([a-f0-9]{64})$/;

export function blobPath(digest: Digest): string {
  return `${LAYOUT_DIR}/blobs/sha256/${digest.slice('sha256:'.length)}`;
}

/**
 * A name in a work directory (`bundle --no-pack`) that is not part of the bundle: the layout's
 * `.ingest/` and `.verified/` and atomic-write temp names (`.<name>.<rand>.tmp`). Dotfiles that
 * belong to the content (a chart's `.helmignore`) are bundled like any file.
 */
export function isWorkFileName(name: string): boolean {
  return name === '.ingest' || name === '.verified' || (name.startsWith('.') && name.endsWith('.tmp'));
}

/** Top-level paths of the site dir inside a bundle (what load --extract-to writes out). */
export const SITE_PATHS = [
  'helmfile.yaml.gotmpl',
  'helmfile.yaml',
  'values/',
  'charts/',
  'releases/',
  'imagelists/',
  'environments/',
] as const;

export function isSitePath(path: string): boolean {
  return SITE_PATHS.some((p) => (p.endsWith('/') ? path.startsWith(p) : path === p));
}

/** The first line of the carried (empty) environments/default.yaml: load recognises its own stub by it. */
export const SITE_DEFAULT_MARKER = '# sealift site environment:';

/** The tar's directory of site tools, and the tools in each platform's folder, in tar order. */
export const SITE_TOOLS_DIR = 'bin';
export const SITE_TOOLS = ['sealift', 'helm', 'helmfile', 'helm-diff'] as const;
export type SiteTool = (typeof SITE_TOOLS)[number];
export const SITE_PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;

/** This machine as a site platform name (os/arch, Go's arch names: linux/amd64, linux/arm64). */
export function hostPlatform(): string {
  return `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`;
}

/** `linux/amd64` -> `bin/linux-amd64/<tool>` */
export function siteToolPath(platform: string, tool: SiteTool): string {
  return `${SITE_TOOLS_DIR}/${platform.replace('/', '-')}/${tool}`;
}

const TOOL_PATH_RE = /^bin\/([a-z0-9]+)-([a-z0-9]+)\/([a-z-]+)$/;

/** A tar path of a carried tool, split: `bin/linux-arm64/helm` -> linux/arm64, helm. */
export function parseSiteToolPath(path: string): { platform: string; tool: SiteTool } | undefined {
  const m = TOOL_PATH_RE.exec(path);
  if (!m || !(SITE_TOOLS as readonly string[]).includes(m[3]!)) return undefined;
  return { platform: `${m[1]}/${m[2]}`, tool: m[3] as SiteTool };
}

/**
 * The order files go into the tar: checksums.sha256, its signature, bundle.json, the site tools
 * (platform by platform, sealift first), then the rest as given.
 */
export function bundleTarOrder(files: readonly string[]): string[] {
  const head = [CHECKSUMS_FILE, SIGNATURE_FILE, BUNDLE_INDEX_FILE];
  return [...head.filter((f) => files.includes(f)), ...siteToolsFirst(files.filter((f) => !head.includes(f)))];
}

/** The site tools first (platform by platform, sealift first), then the rest as given. */
export function siteToolsFirst(files: readonly string[]): string[] {
  const rank = (f: string) => {
    const t = parseSiteToolPath(f);
    return t ? SITE_PLATFORMS.indexOf(t.platform as never) * SITE_TOOLS.length + SITE_TOOLS.indexOf(t.tool) : -1;
  };
  const tools = files.filter((f) => rank(f) >= 0).sort((a, b) => rank(a) - rank(b));
  return [...tools, ...files.filter((f) => rank(f) < 0)];
}
