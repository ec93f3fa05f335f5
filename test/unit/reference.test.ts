// The distribution reference grammar, as tables (after distribution/reference's reference_test.go):
// strict parsing, normalization, formatting, host swap, and a fuzz run that may only ever throw
// SealiftError.
import { describe, expect, it } from 'vitest';
import { isSealiftError, SealiftError } from '../../src/errors.ts';
import {
  familiarImageReference,
  formatImageReference,
  isValidTag,
  manifestSelector,
  normalizeImageReference,
  parseDigest,
  parseImageReference,
  withDefaultTag,
} from '../../src/oci/reference.ts';

const D = `sha256:${'0123456789abcdef'.repeat(4)}`;
const REG = '10.61.3.31:35000'; // a string only: nothing connects to it

function error(fn: () => unknown): SealiftError {
  try {
    fn();
  } catch (e) {
    if (isSealiftError(e)) return e;
    throw e;
  }
  throw new Error('expected a SealiftError');
}

describe('parseImageReference: valid references', () => {
  it.each([
    // input, registry, repository, tag, digest
    ['test_com', '', 'test_com', undefined, undefined],
    ['test.com:tag', '', 'test.com', 'tag', undefined],
    ['test.com:5000', '', 'test.com', '5000', undefined], // a repository and a tag, not a host
    ['test.com/repo:tag', 'test.com', 'repo', 'tag', undefined],
    ['test:5000/repo', 'test:5000', 'repo', undefined, undefined], // a port makes it a host
    ['test:5000/repo:tag', 'test:5000', 'repo', 'tag', undefined],
    [`test:5000/repo@${D}`, 'test:5000', 'repo', undefined, D],
    [`test:5000/repo:tag@${D}`, 'test:5000', 'repo', 'tag', D],
    ['localhost:5000/a', 'localhost:5000', 'a', undefined, undefined],
    ['localhost/a', 'localhost', 'a', undefined, undefined],
    [`a/b:c@${D}`, '', 'a/b', 'c', D], // `a` has no '.', ':' and is not localhost: a path component
    ['docker.io/library/x', 'docker.io', 'library/x', undefined, undefined],
    ['x', '', 'x', undefined, undefined],
    [`${REG}/kserve/x:v1`, REG, 'kserve/x', 'v1', undefined],
    ['[2001:db8::1]:5000/repo:tag', '[2001:db8::1]:5000', 'repo', 'tag', undefined],
    ['sub-dom1.foo.com/bar/baz/quux', 'sub-dom1.foo.com', 'bar/baz/quux', undefined, undefined],
    ['a__b/c--d/e.f_g:T-1.2_x', '', 'a__b/c--d/e.f_g', 'T-1.2_x', undefined],
    ['Docker.IO/istio/pilot:1.23.2', 'Docker.IO', 'istio/pilot', '1.23.2', undefined], // hosts may have upper case
    [
      `gcr.io/knative-releases/knative.dev/serving/cmd/queue@${D}`,
      'gcr.io',
      'knative-releases/knative.dev/serving/cmd/queue',
      undefined,
      D,
    ],
  ] as const)('%s', (input, registry, repository, tag, digest) => {
    const r = parseImageReference(input);
    expect(r.registry).toBe(registry);
    expect(r.repository).toBe(repository);
    expect(r.tag).toBe(tag);
    expect(r.digest).toBe(digest);
    expect(r.original).toBe(input);
  });

  it('accepts a name of exactly 255 characters and a tag of 128', () => {
    const name = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    expect(name.length).toBe(255);
    expect(parseImageReference(name).repository).toBe(name);
    expect(parseImageReference(`x:${'t'.repeat(128)}`).tag).toHaveLength(128);
  });
});

describe('parseImageReference: invalid references', () => {
  it.each([
    // input, what the message must say
    ['', 'it is empty'],
    ['   ', 'it is empty'],
    [':justtag', 'does not match'],
    [`@${D}`, 'does not match'],
    ['repo@sha256:ffff', 'does not match'],
    [`repo@sha512:${'a'.repeat(64)}`, 'only sha256'],
    ['Uppercase:tag', 'must be lowercase'],
    ['test:5000/Uppercase/lowercase:tag', 'must be lowercase'],
    ['docker.io/KServe/router:v0.15.2', 'must be lowercase'],
    ['aa/asdf$$^/aa', 'does not match'],
    ['http://docker.io/x', 'no scheme'],
    ['test.com/repo:tag:tag', 'does not match'],
    [`x:${'t'.repeat(129)}`, 'does not match'], // a tag is at most 128 characters
    [`${'a'.repeat(128)}/${'b'.repeat(128)}`, 'longer than 255'],
    ['a b', 'does not match'],
    ['-leadingdash/x', 'does not match'],
    ['x/', 'does not match'],
    ['{{ .ProxyImage }}', 'does not match'],
  ] as const)('%j: %s', (input, says) => {
    const e = error(() =>
      parseImageReference(input, 'release kserve, ConfigMap inferenceservice-config, data.router.image'),
    );
    expect(e.code).toBe('REF_INVALID');
    expect(e.message).toContain(says);
    expect(e.message).toContain(`"${input}"`);
    expect(e.message).toContain('ConfigMap inferenceservice-config, data.router.image');
  });
});

describe('normalizeImageReference and formatting', () => {
  it.each([
    // input, normalized, familiar
    ['x', 'docker.io/library/x', 'x'],
    ['docker.io/library/x', 'docker.io/library/x', 'x'],
    ['docker.io/x', 'docker.io/library/x', 'x'],
    ['index.docker.io/istio/pilot:1.23.2', 'docker.io/istio/pilot:1.23.2', 'istio/pilot:1.23.2'],
    ['kserve/agent:v0.15.2', 'docker.io/kserve/agent:v0.15.2', 'kserve/agent:v0.15.2'],
    ['localhost:5000/a', 'localhost:5000/a', 'localhost:5000/a'],
    [`a/b:c@${D}`, `docker.io/a/b:c@${D}`, `a/b:c@${D}`], // tag kept beside the digest
    [
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
      'quay.io/jetstack/cert-manager-controller:v1.16.1',
    ],
    ['docker.io/library/a/b', 'docker.io/library/a/b', 'library/a/b'],
  ] as const)('%s -> %s', (input, normalized, familiar) => {
    const r = normalizeImageReference(input);
    expect(formatImageReference(r)).toBe(normalized);
    expect(familiarImageReference(r)).toBe(familiar);
  });

  it('names docker.io/library/x and x as the same image, and only them', () => {
    const same = ['x', 'docker.io/library/x', 'docker.io/x', 'index.docker.io/library/x'].map((s) =>
      formatImageReference(normalizeImageReference(s)),
    );
    expect(new Set(same)).toEqual(new Set(['docker.io/library/x']));
    expect(formatImageReference(normalizeImageReference('library/x'))).toBe('docker.io/library/x');
    expect(formatImageReference(normalizeImageReference('other.io/library/x'))).toBe('other.io/library/x');
  });

  it('adds :latest only when there is neither tag nor digest, and selects by digest first', () => {
    expect(formatImageReference(withDefaultTag(normalizeImageReference('x')))).toBe('docker.io/library/x:latest');
    expect(formatImageReference(withDefaultTag(normalizeImageReference(`x@${D}`)))).toBe(`docker.io/library/x@${D}`);
    expect(manifestSelector(normalizeImageReference(`x:1@${D}`))).toBe(D);
    expect(manifestSelector(normalizeImageReference('x:1'))).toBe('1');
    expect(manifestSelector(normalizeImageReference('x'))).toBe('latest');
  });

  it('checks tags and digests on their own', () => {
    expect(isValidTag('v0.15.2-gpu')).toBe(true);
    expect(isValidTag('.hidden')).toBe(false);
    expect(isValidTag('-x')).toBe(false);
    expect(parseDigest(D)).toBe(D);
    expect(error(() => parseDigest(D.toUpperCase().replace('SHA256', 'sha256'), 'lock')).message).toContain('(lock)');
  });
});

describe('fuzz: parsing never fails with anything but SealiftError', () => {
  // a small deterministic PRNG (mulberry32) so a failure can be replayed
  function rng(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const pieces = [
    'a',
    'Z',
    '0',
    '.',
    '-',
    '_',
    '__',
    '/',
    ':',
    '@',
    'sha256:',
    'f'.repeat(64),
    'localhost',
    '[',
    ']',
    '::1',
    '5000',
    ' ',
    '\n',
    '{{',
    '}}',
    'é',
    '\u0000',
    'docker.io',
    'library/',
    'x'.repeat(130),
  ];

  it('10 000 random strings: a reference or a REF_INVALID error naming the input', () => {
    const next = rng(20261125);
    let parsed = 0;
    for (let i = 0; i < 10_000; i++) {
      const n = 1 + Math.floor(next() * 8);
      let s = '';
      for (let j = 0; j < n; j++) s += pieces[Math.floor(next() * pieces.length)];
      try {
        const r = normalizeImageReference(s, 'fuzz');
        // whatever parses must format back into something that parses to the same thing
        expect(formatImageReference(normalizeImageReference(formatImageReference(r)))).toBe(formatImageReference(r));
        parsed++;
      } catch (e) {
        if (!isSealiftError(e)) throw new Error(`input ${JSON.stringify(s)} threw a non-SealiftError: ${String(e)}`);
        expect(e.code).toBe('REF_INVALID');
      }
    }
    expect(parsed).toBeGreaterThan(100); // the generator does reach valid references
  });
});
