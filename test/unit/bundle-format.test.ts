// The bundle format's grammars as tables: checksums.sha256 (one answer for CRLF, duplicates,
// paths) and bundle.json's schema (version first, then every field), for writer and readers.
import { describe, expect, it } from 'vitest';
import {
  BUNDLE_FORMAT_VERSION,
  parseBundleIndex,
  parseChecksums,
  serializeBundleIndex,
  type BundleIndex,
} from '../../src/bundle-format/index.ts';
import { isSealiftError } from '../../src/errors.ts';
import { bundleIndexOf } from '../support/bundles.ts';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);

function refusal(f: () => unknown): { code: string; message: string } {
  try {
    f();
  } catch (e) {
    if (isSealiftError(e)) return { code: e.code, message: e.message };
    throw e;
  }
  throw new Error('expected a refusal');
}

describe('checksums.sha256 grammar', () => {
  it('reads text and binary forms, in file order', () => {
    expect([...parseChecksums(`${A}  bundle.json\n${B} *images/blobs/sha256/${B}\n`, 'b.tar')]).toEqual([
      ['bundle.json', A],
      [`images/blobs/sha256/${B}`, B],
    ]);
    expect(parseChecksums('', 'b.tar').size).toBe(0);
  });

  it.each([
    ['CRLF line ends', `${A}  bundle.json\r\n`, /line 1 ends in CR/],
    ['an identical duplicated line', `${A}  x\n${A}  x\n`, /line 2 lists "x" a second time/],
    ['one path with two sums', `${A}  x\n${B}  x\n`, /line 2 lists "x" a second time/],
    ['a blank line', `${A}  x\n\n${B}  y\n`, /line 2 is not "<sha256>  <path>"/],
    ['a comment', `# made by hand\n${A}  x\n`, /line 1 is not/],
    ['upper-case hex', `${A.toUpperCase()}  x\n`, /line 1 is not/],
    ['a "./" path', `${A}  ./x\n`, /names "\.\/x", which is not in normal form/],
    ['a ".." path', `${A}  charts/../../etc/passwd\n`, /has a "\.\." segment/],
    ['an absolute path', `${A}  /etc/passwd\n`, /is absolute/],
    ['a Windows path', `${A}  charts\\x.tgz\n`, /is a Windows path/],
    ['no final line feed', `${A}  x`, /line 1 does not end in a line feed/],
    ['itself', `${A}  checksums.sha256\n`, /lists checksums\.sha256 itself/],
  ])('refuses %s', (_name, text, message) => {
    const r = refusal(() => parseChecksums(text, 'b.tar'));
    expect(r.code).toBe('BUNDLE_INVALID');
    expect(r.message).toMatch(/^b\.tar: checksums\.sha256 /);
    expect(r.message).toMatch(message);
  });
});

describe('bundle.json schema', () => {
  const good = (): BundleIndex =>
    bundleIndexOf([
      {
        reference: 'docker.io/library/busybox:1.36',
        root: { digest: `sha256:${A}`, mediaType: 'application/vnd.oci.image.manifest.v1+json', size: 400 },
        blobSizes: [100, 2000],
      },
    ]);

  it('what the writer serializes, every reader reads back', () => {
    const index = good();
    expect(parseBundleIndex(serializeBundleIndex(index), 'b.tar')).toEqual(index);
  });

  it.each([
    ['version 99', { version: 99 }, /format version 99; this sealift reads version 1/],
    ['version "1"', { version: '1' }, /format version "1"/],
    ['no version', { version: undefined }, /has no format version/],
    ['an image without a digest', { images: [{ reference: 'x', size: 1 }] }, /images\.0\.releases|images\.0\.digest/],
    ['a bad digest', { images: [{ ...good().images[0], digest: 'sha256:x' }] }, /images\.0\.digest/],
  ])('refuses %s, naming it', (_name, change, message) => {
    const r = refusal(() => parseBundleIndex(JSON.stringify({ ...good(), ...change }), 'b.tar'));
    expect(r.code).toBe('BUNDLE_INVALID');
    expect(r.message).toMatch(/^b\.tar: bundle\.json /);
    expect(r.message).toMatch(message);
  });

  it('refuses what is not JSON, and a newer version with a hint to use that sealift', () => {
    expect(refusal(() => parseBundleIndex('{"version":', 'b.tar')).message).toMatch(/is not valid JSON/);
    let hint: string | undefined;
    try {
      parseBundleIndex(JSON.stringify({ version: BUNDLE_FORMAT_VERSION + 1 }), 'b.tar');
    } catch (e) {
      hint = isSealiftError(e) ? e.hint : undefined;
    }
    expect(hint).toMatch(/made by a newer sealift/);
  });

  it('the writer refuses to write what does not match (a bug, not a bad bundle)', () => {
    const bad = { ...good(), images: [{ ...good().images[0]!, size: -1 }] };
    expect(refusal(() => serializeBundleIndex(bad)).code).toBe('INTERNAL');
  });
});
