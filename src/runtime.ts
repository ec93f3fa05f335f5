// Where sealift runs from, answered in one place for both ways it runs: a checkout (node
// bin/sealift.js: the files beside src/) or the single executable (scripts/build-exe.ts: the
// stack's default files travel inside it as SEA assets). In the executable the assets are
// written once into a cache directory named by their digest, so every stage keeps reading plain
// files (rules/, templates/, environments/, imagelists/, compat/, charts/, models/) from PROJECT_ROOT whichever way it runs.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sea from 'node:sea';

/** What scripts/build-exe.ts writes into the executable (esbuild `define`); absent in a checkout. */
interface BuildInfo {
  version: string;
  commit: string;
  /** sha256 over every asset's key and bytes: the cache directory's name */
  assetsDigest: string;
}
declare const __SEALIFT_BUILD__: BuildInfo | undefined;
const BUILD: BuildInfo | undefined = typeof __SEALIFT_BUILD__ === 'undefined' ? undefined : __SEALIFT_BUILD__;

/** The directories of the stack's default files, carried as assets by the executable. */
export const ASSET_DIRS = ['rules', 'templates', 'environments', 'imagelists', 'compat', 'charts', 'models'] as const;

/** True when running as the single executable (the Node SEA blob is this process's main script). */
export const IS_EXECUTABLE: boolean = BUILD !== undefined && sea.isSea();

function assetsCacheRoot(): string {
  const base =
    process.env.SEALIFT_CACHE_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'sealift');
  return join(base, 'exe-assets');
}

/** The executable's assets as files: written under a temp name and renamed, so a half-written tree is never used. */
function extractAssets(build: BuildInfo): string {
  for (const root of [assetsCacheRoot(), join(tmpdir(), 'sealift-exe-assets')]) {
    const dir = join(root, build.assetsDigest);
    if (existsSync(join(dir, '.complete'))) return dir;
    const tmp = join(root, `.${build.assetsDigest}.${randomBytes(4).toString('hex')}.tmp`);
    try {
      for (const key of sea.getAssetKeys()) {
        const target = join(tmp, ...key.split('/'));
        mkdirSync(dirname(target), { recursive: true });
        writeFileSync(target, new Uint8Array(sea.getRawAsset(key) as ArrayBuffer));
      }
      writeFileSync(join(tmp, '.complete'), `${build.version} ${build.commit}\n`);
      rmSync(dir, { recursive: true, force: true });
      renameSync(tmp, dir);
      return dir;
    } catch {
      rmSync(tmp, { recursive: true, force: true });
      // another sealift finished first, or the cache is unwritable (read-only home): the next place
      if (existsSync(join(dir, '.complete'))) return dir;
    }
  }
  throw new Error(`sealift could not write its built-in files under ${assetsCacheRoot()} or ${tmpdir()}`);
}

/**
 * The directory holding rules/, templates/, environments/ and imagelists/: the checkout, or the
 * executable's assets extracted.
 */
export const PROJECT_ROOT: string =
  IS_EXECUTABLE && BUILD ? extractAssets(BUILD) : resolve(fileURLToPath(new URL('..', import.meta.url)));

/** The directory of the executable itself (its sibling tools: DIR/bin/helm beside DIR/bin/sealift). */
export const EXECUTABLE_DIR: string | undefined = IS_EXECUTABLE ? dirname(process.execPath) : undefined;

function checkoutVersion(): string {
  try {
    return (JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  } catch {
    return '0.0.0';
  }
}

export const SEALIFT_VERSION: string = BUILD?.version ?? checkoutVersion();

/** The commit sealift was built from (a checkout asks git, only when asked: it costs a process). */
export function sealiftCommit(): string {
  if (BUILD) return BUILD.commit;
  try {
    return execFileSync('git', ['-C', PROJECT_ROOT, 'rev-parse', 'HEAD'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  } catch {
    return 'unknown';
  }
}
