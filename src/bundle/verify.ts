// `sealift bundle verify`: re-hash everything a bundle holds and name what differs. One pass
// over the tar (or its parts, or the .tar.gz): every entry is hashed against checksums.sha256
// (a closed set: nothing missing, nothing unlisted), every blob against its name, each part
// against the .sha256 list beside it, and every image graph in images/index.json is walked to
// check that each manifest, config and layer it references is there with its size.
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { Parser, type ReadEntry } from 'tar';
import { SealiftError } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { parseManifest, type Descriptor } from '../oci/types.ts';
import { BUNDLE_INDEX_FILE, CHECKSUMS_FILE, listFiles } from './pack.ts';

export interface BundleVerifyResult {
  bundle: string;
  files: number;
  bytes: number;
  images: number;
  parts: number;
}

const BLOB_RE = /^images\/blobs\/sha256\/([a-f0-9]{64})$/;
const KEEP_LIMIT = 4 * 1024 * 1024;

interface Seen {
  sha256: string;
  size: number;
  /** small JSON files kept for the graph walk */
  body?: Buffer;
}

/** The files that make up a bundle given as .tar, .tar.gz, .tar.part-000 or a directory. */
async function bundleFiles(input: string): Promise<{ kind: 'dir' | 'tar'; files: string[]; sumsFile?: string }> {
  const st = await stat(input).catch(() => undefined);
  if (!st)
    throw new SealiftError('NOT_FOUND', `${input} does not exist`, {
      hint: 'Give the bundle .tar (or .tar.gz, or the first .part-000), or a bundle directory.',
    });
  if (st.isDirectory()) return { kind: 'dir', files: [input] };
  const m = /^(.*)\.part-(\d{3,})$/.exec(input);
  if (m) {
    const stem = m[1]!;
    const dir = dirname(stem);
    const parts = (await readdir(dir))
      .filter((n) => n.startsWith(`${basename(stem)}.part-`) && /\.part-\d{3,}$/.test(n))
      .sort()
      .map((n) => join(dir, n));
    return { kind: 'tar', files: parts, sumsFile: `${stem}.sha256` };
  }
  return { kind: 'tar', files: [input], sumsFile: `${input}.sha256` };
}

function invalid(input: string, problems: string[], hint: string): SealiftError {
  const shown = problems.slice(0, 20);
  if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
  return new SealiftError(
    'BUNDLE_INVALID',
    `${input} does not verify (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  ${shown.join('\n  ')}`,
    {
      hint,
      details: { problems },
    },
  );
}

export async function verifyBundle(input: string, opts: RunOptions = {}): Promise<BundleVerifyResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const { kind, files, sumsFile } = await bundleFiles(input);
  const problems: string[] = [];
  const seen = new Map<string, Seen>();

  if (kind === 'dir') {
    onEvent({ type: 'phase', name: 'verifying bundle' });
    for (const f of await listFiles(input)) {
      const h = createHash('sha256');
      let size = 0;
      const keep: Buffer[] = [];
      for await (const c of createReadStream(join(input, f))) {
        const b = c as Buffer;
        h.update(b);
        size += b.length;
        onEvent({ type: 'blob:progress', digest: 'verify', bytes: b.length });
        if (size <= KEEP_LIMIT) keep.push(b);
      }
      seen.set(f, { sha256: h.digest('hex'), size, ...(size <= KEEP_LIMIT ? { body: Buffer.concat(keep) } : {}) });
    }
  } else {
    // outer checksums: the parts list written beside the bundle
    const expectedParts = new Map<string, string>();
    if (sumsFile) {
      const text = await readFile(sumsFile, 'utf8').catch(() => undefined);
      for (const line of text?.split('\n') ?? []) {
        const mm = /^([a-f0-9]{64}) [ *](.+)$/.exec(line.trim());
        if (mm) expectedParts.set(mm[2]!, mm[1]!);
      }
      if (text === undefined)
        problems.push(
          `${basename(sumsFile)} is missing beside the bundle: the archive itself cannot be checked, only its contents`,
        );
      for (const name of expectedParts.keys())
        if (!files.some((f) => basename(f) === name))
          problems.push(`${name}: listed in ${basename(sumsFile)} but not found`);
    }
    const total = (await Promise.all(files.map((f) => stat(f)))).reduce((n, s) => n + s.size, 0);
    onEvent({ type: 'phase', name: 'verifying bundle' });
    onEvent({ type: 'blob:start', digest: 'verify', size: total });
    const concat = new PassThrough({ highWaterMark: 1 << 20 });
    const feed = (async () => {
      for (const f of files) {
        const h = createHash('sha256');
        for await (const c of createReadStream(f, { highWaterMark: 1 << 20 })) {
          h.update(c as Buffer);
          onEvent({ type: 'blob:progress', digest: 'verify', bytes: (c as Buffer).length });
          if (!concat.write(c)) await new Promise((r) => concat.once('drain', r));
        }
        const want = expectedParts.get(basename(f));
        const got = h.digest('hex');
        if (want && want !== got)
          problems.push(`${basename(f)}: sha256 is ${got}, ${basename(sumsFile ?? '')} says ${want}`);
      }
      concat.end();
    })();
    const parsed = new Promise<void>((resolve, reject) => {
      const parser = new Parser({
        strict: true,
        onReadEntry: (entry: ReadEntry) => {
          const path = entry.path.replace(/^\.\//, '');
          if (entry.type !== 'File' && entry.type !== 'OldFile') {
            if (entry.type !== 'Directory')
              problems.push(`${path}: a ${entry.type} entry; a bundle holds only files and directories`);
            entry.resume();
            return;
          }
          if (path.split('/').includes('..') || path.startsWith('/')) problems.push(`${path}: unsafe path`);
          const h = createHash('sha256');
          let size = 0;
          const keep: Buffer[] = [];
          entry.on('data', (c: Buffer) => {
            h.update(c);
            size += c.length;
            if (size <= KEEP_LIMIT) keep.push(c);
          });
          entry.on('end', () => {
            if (seen.has(path)) problems.push(`${path}: appears twice in the archive`);
            seen.set(path, {
              sha256: h.digest('hex'),
              size,
              ...(size <= KEEP_LIMIT ? { body: Buffer.concat(keep) } : {}),
            });
          });
        },
      });
      parser.on('error', reject);
      parser.on('close', () => resolve());
      concat.on('error', reject);
      concat.pipe(parser as unknown as NodeJS.WritableStream);
    });
    try {
      await Promise.all([feed, parsed]);
    } catch (e) {
      problems.push(`the archive is not a readable tar: ${(e as Error).message}`);
      throw invalid(input, problems, 'The file is damaged or incomplete; copy it again (all parts, if split).');
    }
    onEvent({ type: 'blob:done', digest: 'verify', size: total });
  }

  // inner checksums: a closed set
  const sums = seen.get(CHECKSUMS_FILE);
  if (!sums?.body)
    throw new SealiftError('BUNDLE_INVALID', `${input} has no ${CHECKSUMS_FILE}; it is not a sealift bundle`);
  const listed = new Map<string, string>();
  for (const line of sums.body.toString('utf8').split('\n')) {
    if (!line.trim()) continue;
    const mm = /^([a-f0-9]{64}) [ *](.+)$/.exec(line);
    if (!mm) problems.push(`${CHECKSUMS_FILE}: malformed line "${line.slice(0, 100)}"`);
    else listed.set(mm[2]!.replace(/^\.\//, ''), mm[1]!);
  }
  let bytes = 0;
  for (const [path, s] of seen) {
    bytes += s.size;
    if (path === CHECKSUMS_FILE) continue;
    const want = listed.get(path);
    if (!want) problems.push(`${path}: in the bundle but not listed in ${CHECKSUMS_FILE}`);
    else if (want !== s.sha256) problems.push(`${path}: sha256 is ${s.sha256}, ${CHECKSUMS_FILE} says ${want}`);
    const blob = BLOB_RE.exec(path);
    if (blob && blob[1] !== s.sha256) problems.push(`${path}: content hashes to sha256:${s.sha256}, not to its name`);
  }
  for (const path of listed.keys())
    if (!seen.has(path)) problems.push(`${path}: listed in ${CHECKSUMS_FILE} but not in the bundle`);

  // image graphs: every root in images/index.json, and bundle.json's images, complete
  let images = 0;
  const blobEntry = (d: { digest: string }) => seen.get(`images/blobs/sha256/${d.digest.slice(7)}`);
  const walk = (d: Descriptor, from: string, depth = 0): void => {
    const e = blobEntry(d);
    if (!e) return void problems.push(`${from}: ${d.digest} is referenced but not in the bundle`);
    if (e.size !== d.size)
      return void problems.push(`${from}: ${d.digest} is ${e.size} bytes, its descriptor says ${d.size}`);
    if (!/manifest|index/.test(d.mediaType) || depth > 4) return;
    if (!e.body) return void problems.push(`${from}: manifest ${d.digest} is too large`);
    try {
      const raw = parseManifest(e.body, { mediaType: d.mediaType, expected: d.digest, where: from });
      if (raw.kind === 'index') raw.parsed.manifests.forEach((c) => walk(c, from, depth + 1));
      else [raw.parsed.config, ...raw.parsed.layers].forEach((c) => walk(c, from, depth + 1));
    } catch (err) {
      problems.push(`${from}: ${(err as Error).message}`);
    }
  };
  const index = seen.get('images/index.json');
  if (!index?.body) problems.push('images/index.json is missing');
  else {
    try {
      const idx = JSON.parse(index.body.toString('utf8')) as { manifests?: Descriptor[] };
      for (const d of idx.manifests ?? []) {
        images++;
        walk(d, d.annotations?.['io.sealift.source'] ?? d.digest);
      }
    } catch (e) {
      problems.push(`images/index.json: ${(e as Error).message}`);
    }
  }
  const bi = seen.get(BUNDLE_INDEX_FILE);
  if (!bi?.body) problems.push(`${BUNDLE_INDEX_FILE} is missing`);
  else {
    try {
      const j = JSON.parse(bi.body.toString('utf8')) as {
        images?: { reference: string; digest: string; size: number }[];
      };
      for (const img of j.images ?? []) {
        const e = blobEntry(img);
        if (!e) problems.push(`${BUNDLE_INDEX_FILE}: ${img.reference} is ${img.digest}, which is not in the bundle`);
        else if (e.size !== img.size)
          problems.push(
            `${BUNDLE_INDEX_FILE}: ${img.reference} manifest is ${e.size} bytes, bundle.json says ${img.size}`,
          );
      }
    } catch (e) {
      problems.push(`${BUNDLE_INDEX_FILE}: ${(e as Error).message}`);
    }
  }

  if (problems.length)
    throw invalid(
      input,
      problems,
      'The bundle was altered or damaged after it was made: copy it again, or make it again with `sealift bundle`.',
    );
  return { bundle: input, files: seen.size, bytes, images, parts: kind === 'tar' ? files.length : 0 };
}
