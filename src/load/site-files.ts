// `load --extract-to DIR`: the site directory (helmfile, values, charts, release files, image
// lists, and the environment the values were generated from, so that `sealift verify -e <env>
// --stack DIR` needs no checkout) copied out of the bundle, each file verified against checksums.sha256 on the way out,
// plus containerd `certs.d/<upstream-host>/hosts.toml` for nodes that pull upstream names.
import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { isSitePath, SITE_DEFAULT_MARKER, type BundleArchive } from '../bundle-format/index.ts';
import { SealiftError } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { writeFileAtomic } from '../fs-atomic.ts';
import { ensureFreeSpace } from '../disk.ts';
import { checkOutputDir, checkOutputFile } from '../fs-paths.ts';
import type { Digest, ImageReference } from '../oci/reference.ts';
import { VerifyStream } from '../oci/verify.ts';
import { renderHostsToml, upstreamHosts, type HostsTomlOptions } from './hosts-toml.ts';

export interface SiteFilesResult {
  dir: string;
  files: string[];
  hostsToml: string[];
}

/** Copies one archive file to `target` through a temp file, verifying its sha256 and size. */
export async function extractOne(
  archive: BundleArchive,
  path: string,
  sha256Hex: string,
  size: number,
  target: string,
): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  // spooled while the bundle streamed by, and checked against checksums.sha256 then: moved, not copied
  const spooled = (archive as { spooledFile?: (p: string) => string | undefined }).spooledFile?.(path);
  if (spooled) return rename(spooled, target);
  const tmp = join(dirname(target), `.${randomBytes(4).toString('hex')}.extract.tmp`);
  try {
    await pipeline(
      archive.open(path),
      new VerifyStream({ digest: `sha256:${sha256Hex}` as Digest, size }, { where: `${archive.location} ${path}` }),
      createWriteStream(tmp),
    );
    await rename(tmp, target);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/**
 * Every path the site files go to can be written, checked before anything is pushed (load calls
 * it first): the directory and each file's directory are no files, no file's target is a directory.
 */
export async function checkSiteDir(archive: BundleArchive, dir: string): Promise<void> {
  await checkOutputDir(dir, '--extract-to');
  const dirs = new Set<string>();
  let bytes = 0;
  for (const e of archive.entries.values()) {
    if (e.type !== 'file' || !isSitePath(e.path)) continue;
    bytes += e.size;
    const target = join(dir, ...e.path.split('/'));
    if (!dirs.has(dirname(target))) {
      dirs.add(dirname(target));
      await checkOutputDir(dirname(target), '--extract-to');
    }
    await checkOutputFile(target, '--extract-to');
  }
  // their sizes are known: a disk that cannot take them fails now, not after the push
  await ensureFreeSpace(dir, bytes, 'writing the site files (--extract-to)');
  // The carried environments/default.yaml is empty on purpose (site-env.ts). Over a checkout's own
  // default.yaml it would silently change every other environment there: refuse, before writing.
  if (archive.entries.has('environments/default.yaml')) {
    const existing = join(dir, 'environments', 'default.yaml');
    const text = await readFile(existing, 'utf8').catch(() => undefined);
    if (text !== undefined && !text.startsWith(SITE_DEFAULT_MARKER))
      throw new SealiftError('USAGE', `--extract-to ${dir}: ${existing} is a stack's own default.yaml`, {
        hint: 'Extract the site files into a directory of their own (a new one, or one an earlier load wrote); nothing was pushed or written.',
        details: { file: existing },
      });
  }
}

export async function writeSiteFiles(opts: {
  archive: BundleArchive;
  /** path -> sha256 hex, from checksums.sha256 (already checked) */
  checksums: ReadonlyMap<string, string>;
  dir: string;
  sources: readonly ImageReference[];
  hosts: HostsTomlOptions;
  onEvent?: EventSink;
}): Promise<SiteFilesResult> {
  const onEvent = opts.onEvent ?? noEvents;
  await checkSiteDir(opts.archive, opts.dir);
  const files: string[] = [];
  for (const e of opts.archive.entries.values()) {
    if (e.type !== 'file' || !isSitePath(e.path)) continue;
    const sum = opts.checksums.get(e.path);
    if (!sum) continue; // unreachable after checkBundleChecksums: every file is listed
    // the path was normalized and checked by the tar reader: relative, no '..'
    const target = join(opts.dir, ...e.path.split('/'));
    await extractOne(opts.archive, e.path, sum, e.size, target);
    files.push(e.path);
    onEvent({ type: 'file', action: 'written', path: target });
  }
  const hostsToml: string[] = [];
  for (const host of upstreamHosts(opts.sources)) {
    const rel = `containerd/certs.d/${host}/hosts.toml`;
    const target = join(opts.dir, ...rel.split('/'));
    await writeFileAtomic(target, renderHostsToml(host, opts.hosts));
    hostsToml.push(rel);
    onEvent({ type: 'file', action: 'written', path: target });
  }
  return { dir: opts.dir, files, hostsToml };
}
