// What refers to an image, as data: the tag schema's names, bundle.json's `referrers` (what the
// writer serializes reads back; a cosign tag of another form is refused), the bundle check
// (a listed referrer must be in the bundle whole), and the public keys verify --signatures takes.
import { generateKeyPairSync } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { blobPath, parseBundleIndex, serializeBundleIndex } from '../../src/bundle-format/index.ts';
import { verifyBundle } from '../../src/bundle/verify.ts';
import { isSealiftError } from '../../src/errors.ts';
import { cosignTag, fallbackTag } from '../../src/oci/referrers.ts';
import { MediaTypes, sha256Digest, type Digest } from '../../src/oci/types.ts';
import { readPublicKey } from '../../src/verify/signatures.ts';
import { bundleIndexOf, craftBundle, editJson, resum } from '../support/bundles.ts';
import { tempDir } from '../support/process.ts';

const D = `sha256:${'a'.repeat(64)}` as Digest;

describe('the tag schema', () => {
  it('names the fallback index and cosign objects after the digest', () => {
    expect(fallbackTag(D)).toBe(`sha256-${'a'.repeat(64)}`);
    expect(cosignTag(D, 'sig')).toBe(`sha256-${'a'.repeat(64)}.sig`);
    expect(cosignTag(D, 'sbom')).toBe(`sha256-${'a'.repeat(64)}.sbom`);
  });
});

describe("bundle.json's referrers", () => {
  const withReferrers = (tag: string) => {
    const index = bundleIndexOf([
      {
        reference: 'docker.io/istio/pilot:1.23.2',
        root: { digest: D, mediaType: MediaTypes.ociManifest, size: 9 },
        blobSizes: [1],
      },
    ]);
    index.images[0]!.referrers = [
      { subject: D, kind: 'tag', tag, descriptor: { mediaType: MediaTypes.ociManifest, digest: D, size: 300 } },
      {
        subject: D,
        kind: 'subject',
        descriptor: {
          mediaType: MediaTypes.ociManifest,
          digest: D,
          size: 300,
          artifactType: 'application/vnd.dev.cosign.artifact.sig.v1+json',
        },
      },
    ];
    return index;
  };

  it('read back as written', () => {
    const index = withReferrers(cosignTag(D, 'att'));
    expect(parseBundleIndex(serializeBundleIndex(index), 'b.tar')).toEqual(index);
  });

  it('refuses a cosign tag of another form, naming the field', () => {
    let caught: unknown;
    try {
      parseBundleIndex(JSON.stringify(withReferrers('latest')), 'b.tar');
    } catch (e) {
      caught = e;
    }
    expect(isSealiftError(caught) && caught.code).toBe('BUNDLE_INVALID');
    expect((caught as Error).message).toMatch(/images\.0\.referrers\.0\.tag/);
  });
});

describe('the bundle check', () => {
  it('takes a referrer carried whole and refuses one whose manifest is not in the bundle', async () => {
    await using dir = await tempDir();
    const root = join(dir.path, 'b');
    const crafted = await craftBundle(root);
    const subject = crafted.images[0]!.root.digest;
    const sig = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MediaTypes.ociManifest,
        config: crafted.images[0]!.config,
        layers: [],
      }),
    );
    const sigDigest = sha256Digest(sig);
    const referrer = {
      subject,
      kind: 'tag',
      tag: cosignTag(subject, 'sig'),
      descriptor: { mediaType: MediaTypes.ociManifest, digest: sigDigest, size: sig.length },
    };
    await editJson(root, 'bundle.json', (v) => {
      (v.images as Record<string, unknown>[])[0]!.referrers = [referrer];
    });
    await resum(root);
    const err = (await verifyBundle(root).catch((e: unknown) => e)) as Error;
    expect(isSealiftError(err) && err.code).toBe('BUNDLE_INVALID');
    expect(err.message).toContain(
      `${crafted.images[0]!.reference} ${cosignTag(subject, 'sig')}: ${sigDigest} is referenced but not in the bundle`,
    );
    const path = join(root, blobPath(sigDigest));
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, sig);
    await resum(root);
    await expect(verifyBundle(root)).resolves.toMatchObject({ images: 2 });
  });
});

describe('verify --signatures keys', () => {
  it('reads a PEM public key and refuses a private key, garbage and a missing file, naming the file', async () => {
    await using dir = await tempDir();
    const { publicKey, privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const pub = join(dir.path, 'cosign.pub');
    const priv = join(dir.path, 'key.pem');
    const junk = join(dir.path, 'junk.pub');
    await writeFile(pub, publicKey.export({ type: 'spki', format: 'pem' }));
    await writeFile(priv, privateKey.export({ type: 'pkcs8', format: 'pem' }));
    await writeFile(junk, 'not a key\n');
    expect((await readPublicKey(pub)).asymmetricKeyType).toBe('ec');
    await expect(readPublicKey(priv)).rejects.toThrow(`--key ${priv} is a private key`);
    await expect(readPublicKey(junk)).rejects.toThrow(`--key ${junk} is not a PEM public key`);
    await expect(readPublicKey(join(dir.path, 'none.pub'))).rejects.toThrow(/cannot read it \(ENOENT\)/);
  });
});
