// `sealift bundle verify`: the check load runs before it pushes (src/bundle-format checkBundle:
// checksums, completeness, sizes) through the one bundle reader, plus what only the file(s) on
// disk can say: each part (or the tar, or the .tar.gz) against the <name>.tar.sha256 list
// beside it. Streaming: every file is hashed in 1 MiB chunks, only bundle.json, the checksum
// list and manifests (each at most 4 MiB) are read whole, so memory does not grow with the bundle.
// A compressed bundle (zstd or gzip, told by its magic bytes; split parts too) is checked in one
// read of its stream (checkBundleStream: the same rules and verdict), with no temp tar.
import { createHash } from 'node:crypto';
import { open, readFile, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import {
  checkBundle,
  checkBundleStream,
  compressionOfFile,
  findParts,
  isBundleSigned,
  openBundleArchive,
  openBundleStream,
  readVerifyKey,
  verifyBundleSignature,
  type SignatureCheck,
} from '../bundle-format/index.ts';
import { SealiftError, isSealiftError } from '../errors.ts';
import { noEvents, type EventSink, type RunOptions } from '../events.ts';

export interface BundleVerifyResult {
  bundle: string;
  files: number;
  bytes: number;
  images: number;
  parts: number;
  /** signed: it carries checksums.sha256.sig; verified: it verified with --verify-key */
  signature: SignatureCheck;
  /** an incremental bundle: what it references and does not carry (its base's; load checks them at the target) */
  base?: { identity: string; name: string; absent: number; absentBytes: number };
}

export interface BundleVerifyOptions extends RunOptions {
  /** a PEM public key: refuse the bundle unless checksums.sha256 is signed by it (BUNDLE_UNTRUSTED) */
  verifyKey?: string;
}

const SUMS_LINE_RE = /^([a-f0-9]{64}) [ *](.+)$/;

function invalid(input: string, problems: string[], hint: string): SealiftError {
  const shown = problems.slice(0, 20);
  if (problems.length > shown.length) shown.push(`... and ${problems.length - shown.length} more`);
  return new SealiftError(
    'BUNDLE_INVALID',
    `${input} does not verify (${problems.length} problem${problems.length > 1 ? 's' : ''}):\n  ${shown.join('\n  ')}`,
    { hint, details: { problems } },
  );
}

/** sha256 of a file through one reused buffer: no allocation per chunk, so memory stays flat. */
async function sha256File(path: string, onEvent: EventSink): Promise<string> {
  const h = createHash('sha256');
  const buf = Buffer.allocUnsafe(1 << 20);
  const fh = await open(path, 'r');
  try {
    for (;;) {
      const { bytesRead } = await fh.read(buf, 0, buf.length, null);
      if (bytesRead === 0) break;
      h.update(buf.subarray(0, bytesRead));
      onEvent({ type: 'blob:progress', digest: 'verify', bytes: bytesRead });
    }
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}

/** The outer list (<name>.tar[.gz].sha256) against the files on disk: what it lists must be there and match. */
async function checkOuterSums(files: readonly string[], sumsFile: string, onEvent: EventSink): Promise<string[]> {
  const problems: string[] = [];
  const text = await readFile(sumsFile, 'utf8').catch(() => undefined);
  if (text === undefined) {
    return [
      `${basename(sumsFile)} is missing beside the bundle: the archive itself cannot be checked, only its contents`,
    ];
  }
  const expected = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = SUMS_LINE_RE.exec(line);
    if (m) expected.set(m[2] ?? '', m[1] ?? '');
    else if (line !== '') problems.push(`${basename(sumsFile)}: malformed line "${line.slice(0, 100)}"`);
  }
  for (const name of expected.keys())
    if (!files.some((f) => basename(f) === name))
      problems.push(`${name}: listed in ${basename(sumsFile)} but not found`);
  for (const f of files) {
    const want = expected.get(basename(f));
    if (want === undefined) continue;
    const got = await sha256File(f, onEvent);
    if (got !== want) problems.push(`${basename(f)}: sha256 is ${got}, ${basename(sumsFile)} says ${want}`);
  }
  return problems;
}

export async function verifyBundle(input: string, opts: BundleVerifyOptions = {}): Promise<BundleVerifyResult> {
  const onEvent = opts.onEvent ?? noEvents;
  const key = opts.verifyKey ? await readVerifyKey(opts.verifyKey) : undefined;
  const st = await stat(input).catch(() => undefined);
  if (!st) {
    throw new SealiftError('NOT_FOUND', `${input} does not exist`, {
      hint: 'Give the bundle .tar (or .tar.zst, .tar.gz, or the first .part-000), or a bundle directory.',
    });
  }
  onEvent({ type: 'phase', name: 'verifying bundle' });
  const problems: string[] = [];
  let parts = 0;
  let compressed = false;
  if (!st.isDirectory()) {
    const files = await findParts(input);
    parts = files.length;
    const stem = /\.part-\d{3,}$/.test(input) ? input.replace(/\.part-\d{3,}$/, '') : input;
    problems.push(...(await checkOuterSums(files, `${stem}.sha256`, onEvent)));
    compressed = (await compressionOfFile(files[0]!)) !== 'none';
  }
  let checked: Awaited<ReturnType<typeof checkBundle>> | undefined;
  let signature: SignatureCheck = { signed: false, verified: false };
  try {
    if (compressed) {
      // a compressed stream is checked in one read, as load reads it (no temp tar)
      const stream = await openBundleStream(input);
      try {
        checked = await checkBundleStream(stream, {
          onEvent,
          // the signature before the verdict: an untrusted bundle is refused as such
          beforeVerdict: async (archive) => {
            signature = key
              ? (await verifyBundleSignature(archive, key)).check
              : { signed: isBundleSigned(archive), verified: false };
          },
        });
      } finally {
        await stream.close();
      }
    } else {
      const archive = await openBundleArchive(input);
      try {
        // the signature before the hashing: an untrusted bundle is refused as such
        const signed = key ? await verifyBundleSignature(archive, key) : undefined;
        signature = signed?.check ?? { signed: isBundleSigned(archive), verified: false };
        checked = await checkBundle(archive, { onEvent, ...(signed ? { checksums: signed.checksums } : {}) });
      } finally {
        await archive.close();
      }
    }
  } catch (e) {
    if (!isSealiftError(e) || problems.length === 0 || e.code === 'BUNDLE_UNTRUSTED') throw e;
    problems.push(e.message);
  }
  if (problems.length > 0 || !checked) {
    throw invalid(
      input,
      problems,
      'The bundle was altered or damaged after it was made: copy it again (all parts, if split), or make it again with `sealift bundle`.',
    );
  }
  const base = checked.index.base;
  return {
    bundle: input,
    files: checked.files,
    bytes: checked.bytes,
    images: checked.images.length,
    parts,
    signature,
    ...(base
      ? {
          base: {
            identity: base.identity,
            name: base.name,
            absent: base.absent.length,
            absentBytes: base.absent.reduce((n, a) => n + a.size, 0),
          },
        }
      : {}),
  };
}
