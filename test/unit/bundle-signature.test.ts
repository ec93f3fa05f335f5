// Signed bundles (issue 11.1, 11.2) without the cosign binary: sign and verify round trips with a
// PEM P-256 key and with a key in cosign's encrypted format (decrypted by scrypt + secretbox, as
// go-securesystemslib encrypts it: one of its own test vectors checks our side of that), a
// tampered checksums.sha256, another key, an unsigned bundle, and the key refusals that name the
// file and never print the key. The integration test (bundle-sign.test.ts) checks the real cosign.
import { generateKeyPairSync, randomBytes, scryptSync, type KeyObject } from 'node:crypto';
import { appendFile, readFile, writeFile } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { describe, expect, it } from 'vitest';
import {
  CHECKSUMS_FILE,
  SIGNATURE_FILE,
  checkBundle,
  isBundleSigned,
  openBundleArchive,
  readVerifyKey,
  verifyBundleSignature,
  verifyChecksumsSignature,
} from '../../src/bundle-format/index.ts';
import { loadSigningKey, signBundle, signChecksums } from '../../src/bundle/sign.ts';
import { packBundle } from '../../src/bundle/pack.ts';
import { isSealiftError } from '../../src/errors.ts';
import { craftBundle, resum } from '../support/bundles.ts';
import { tempDir } from '../support/process.ts';

async function refusal(f: () => Promise<unknown>): Promise<{ code: string; message: string; json: string }> {
  try {
    await f();
  } catch (e) {
    if (isSealiftError(e)) return { code: e.code, message: e.message, json: JSON.stringify(e.toJSON()) };
    throw e;
  }
  throw new Error('expected a refusal');
}

function p256(): { priv: KeyObject; pub: KeyObject } {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  return { priv: privateKey, pub: publicKey };
}

const pkcs8Pem = (k: KeyObject) => k.export({ type: 'pkcs8', format: 'pem' }) as string;
const spkiPem = (k: KeyObject) => k.export({ type: 'spki', format: 'pem' }) as string;

/** A key file as `cosign generate-key-pair` writes it (go-securesystemslib's encrypted JSON in PEM). */
function cosignEncrypted(priv: KeyObject, password: string, N = 32768): string {
  const salt = randomBytes(32);
  const nonce = randomBytes(24);
  const key = scryptSync(password, salt, 32, { N, r: 8, p: 1, maxmem: 256 * 1024 * 1024 });
  const der = priv.export({ type: 'pkcs8', format: 'der' });
  const ciphertext = xsalsa20poly1305(key, nonce).encrypt(der);
  const json = JSON.stringify({
    kdf: { name: 'scrypt', params: { N, r: 8, p: 1 }, salt: salt.toString('base64') },
    cipher: { name: 'nacl/secretbox', nonce: nonce.toString('base64') },
    ciphertext: Buffer.from(ciphertext).toString('base64'),
  });
  const body = Buffer.from(json)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n');
  return `-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n${body}\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n`;
}

describe('signing checksums.sha256 (cosign sign-blob format)', () => {
  it('round trip with a PEM PKCS#8 key: base64 of a DER signature, verified by the public key', async () => {
    await using tmp = await tempDir('sealift-sig-');
    const { priv, pub } = p256();
    await writeFile(join(tmp.path, 'k.pem'), pkcs8Pem(priv));
    await writeFile(join(tmp.path, 'k.pub'), spkiPem(pub));
    const key = await loadSigningKey(join(tmp.path, 'k.pem'), undefined);
    const sums = Buffer.from(`${'a'.repeat(64)}  bundle.json\n`);
    const sig = signChecksums(sums, key);
    expect(sig.toString()).toMatch(/^[A-Za-z0-9+/]+={0,2}$/); // no line feed, as cosign writes it
    expect(Buffer.from(sig.toString(), 'base64')[0]).toBe(0x30); // an ASN.1 SEQUENCE (r, s)
    const vk = await readVerifyKey(join(tmp.path, 'k.pub'));
    expect(vk.fingerprint).toBe(key.fingerprint);
    expect(verifyChecksumsSignature(sums, sig, vk, 'b.tar')).toMatchObject({ signed: true, verified: true });
    // a trailing line feed (a .sig copied through an editor) still reads
    expect(verifyChecksumsSignature(sums, Buffer.from(`${sig.toString()}\n`), vk, 'b.tar').verified).toBe(true);
  });

  it("round trip with cosign's encrypted key pair (COSIGN_PASSWORD), every scrypt strength cosign writes", async () => {
    await using tmp = await tempDir('sealift-sig-');
    const { priv, pub } = p256();
    await writeFile(join(tmp.path, 'k.pub'), spkiPem(pub));
    const vk = await readVerifyKey(join(tmp.path, 'k.pub'));
    for (const N of [32768, 65536]) {
      await writeFile(join(tmp.path, 'cosign.key'), cosignEncrypted(priv, 'hunter2', N));
      const key = await loadSigningKey(join(tmp.path, 'cosign.key'), 'hunter2');
      expect(key.fingerprint).toBe(vk.fingerprint);
      const sums = Buffer.from(`${'b'.repeat(64)}  x\n`);
      expect(verifyChecksumsSignature(sums, signChecksums(sums, key), vk, 'b.tar').verified).toBe(true);
    }
  });

  it("opens go-securesystemslib's own test vector (its scrypt and secretbox agree with ours)", async () => {
    await using tmp = await tempDir('sealift-sig-');
    // encrypted/encrypted_test.go TestDecrypt: "reallyimportant" under "supersecret" (no key inside)
    const vector = `{"kdf":{"name":"scrypt","params":{"N":32768,"r":8,"p":1},"salt":"N9a7x5JFGbrtB2uBR81jPwp0eiLR4A7FV3mjVAQrg1g="},"cipher":{"name":"nacl/secretbox","nonce":"2h8HxMmgRfuYdpswZBQaU3xJ1nkA/5Ik"},"ciphertext":"SEW6sUh0jf2wfdjJGPNS9+bkk2uB+Cxamf32zR8XkQ=="}`;
    const file = join(tmp.path, 'vector.key');
    await writeFile(
      file,
      `-----BEGIN ENCRYPTED COSIGN PRIVATE KEY-----\n${Buffer.from(vector).toString('base64')}\n-----END ENCRYPTED COSIGN PRIVATE KEY-----\n`,
    );
    // the right password opens the box: what is inside is no key, which is said as such
    expect((await refusal(() => loadSigningKey(file, 'supersecret'))).message).toMatch(
      /opens, but does not hold a PKCS#8 private key/,
    );
    expect((await refusal(() => loadSigningKey(file, 'wrong'))).message).toMatch(
      /cannot be decrypted with the password in COSIGN_PASSWORD/,
    );
  });

  it('refuses keys it cannot use, naming the file, never printing the key or password', async () => {
    await using tmp = await tempDir('sealift-sig-');
    const { priv, pub } = p256();
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' });
    const files: Record<string, string> = {
      'encrypted.key': cosignEncrypted(priv, 'pw-never-shown'),
      'rsa-pkcs8.pem': pkcs8Pem(rsa.privateKey),
      'rsa-pkcs1.pem': rsa.privateKey.export({ type: 'pkcs1', format: 'pem' }) as string,
      'p384.pem': pkcs8Pem(p384.privateKey),
      'public.pem': spkiPem(pub),
      'garbage.txt': 'not a key\n',
      'openssl-enc.pem': priv.export({
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'x',
      }) as string,
    };
    for (const [name, text] of Object.entries(files)) await writeFile(join(tmp.path, name), text);
    const at = (n: string) => join(tmp.path, n);
    const cases: [string, string | undefined, RegExp][] = [
      ['encrypted.key', undefined, /is an encrypted cosign key and COSIGN_PASSWORD is not set/],
      ['encrypted.key', 'wrong', /cannot be decrypted with the password/],
      ['rsa-pkcs8.pem', undefined, /is an RSA key; sealift signs and checks bundles with ECDSA P-256 only/],
      ['rsa-pkcs1.pem', undefined, /is an RSA key/],
      ['p384.pem', undefined, /is an ECDSA key on curve secp384r1/],
      ['public.pem', undefined, /is a public key; --sign-key takes the private key/],
      ['garbage.txt', undefined, /is not a PEM file/],
      ['openssl-enc.pem', undefined, /password-protected PKCS#8 key/],
    ];
    // a line of every key file's body, and the password
    const secrets = [...Object.values(files), pkcs8Pem(priv)]
      .map((t) => t.split('\n')[1] ?? '')
      .filter((l) => l.length > 20)
      .concat('pw-never-shown');
    for (const [name, password, want] of cases) {
      const r = await refusal(() => loadSigningKey(at(name), password));
      expect(r.code, name).toBe('KEY_INVALID');
      expect(r.message, name).toContain(at(name));
      expect(r.message, name).toMatch(want);
      for (const s of secrets) expect(r.json, name).not.toContain(s);
    }
    // --verify-key wants the public half, and says so for a private key
    const v = await refusal(() => readVerifyKey(at('rsa-pkcs8.pem')));
    expect(v).toMatchObject({ code: 'KEY_INVALID' });
    expect(v.message).toMatch(/is a private key .*--verify-key takes the public key/);
    await writeFile(at('rsa.pub'), spkiPem(rsa.publicKey));
    expect((await refusal(() => readVerifyKey(at('rsa.pub')))).message).toMatch(/is an RSA key/);
    expect((await refusal(() => readVerifyKey(at('missing.pub')))).code).toBe('NOT_FOUND');
  });
});

describe('a bundle refused unless signed by the key (verifyBundleSignature)', () => {
  it('signed: verifies; tampered checksums (recomputed), another key and no signature: BUNDLE_UNTRUSTED', async () => {
    await using tmp = await tempDir('sealift-sig-');
    const mine = p256();
    const other = p256();
    await writeFile(join(tmp.path, 'mine.pem'), pkcs8Pem(mine.priv));
    await writeFile(join(tmp.path, 'other.pem'), pkcs8Pem(other.priv));
    await writeFile(join(tmp.path, 'mine.pub'), spkiPem(mine.pub));
    const key = await loadSigningKey(join(tmp.path, 'mine.pem'), undefined);
    const otherKey = await loadSigningKey(join(tmp.path, 'other.pem'), undefined);
    const vk = await readVerifyKey(join(tmp.path, 'mine.pub'));
    const b = await craftBundle(join(tmp.path, 'b'));

    const check = async (root: string) => {
      const archive = await openBundleArchive(root);
      try {
        return (await verifyBundleSignature(archive, vk)).check;
      } finally {
        await archive.close();
      }
    };
    // unsigned
    const unsigned = await refusal(() => check(b.root));
    expect(unsigned.code).toBe('BUNDLE_UNTRUSTED');
    expect(unsigned.message).toMatch(/the bundle is not signed \(it has no checksums\.sha256\.sig\)/);

    // signed by the key (bundle sign of a directory)
    const signed = await signBundle(b.root, key);
    expect(signed).toMatchObject({ kind: 'directory', replaced: false, fingerprint: vk.fingerprint });
    expect(await check(b.root)).toMatchObject({ signed: true, verified: true, fingerprint: vk.fingerprint });
    const archive = await openBundleArchive(b.root);
    expect(isBundleSigned(archive)).toBe(true);
    await archive.close();

    // one byte of a file changed, checksums recomputed, the old signature kept
    await appendFile(join(b.root, 'imagelists', 'crafted.txt'), 'x');
    await resum(b.root);
    const tampered = await refusal(() => check(b.root));
    expect(tampered.code).toBe('BUNDLE_UNTRUSTED');
    expect(tampered.message).toMatch(/does not verify with the key .*mine\.pub \(sha256:[0-9a-f]{64}\)/);

    // signed by another key
    await signBundle(b.root, otherKey);
    expect((await refusal(() => check(b.root))).code).toBe('BUNDLE_UNTRUSTED');

    // a signature file that is no signature at all
    await writeFile(join(b.root, SIGNATURE_FILE), 'not base64 at all!\n');
    expect((await refusal(() => check(b.root))).code).toBe('BUNDLE_UNTRUSTED');

    // re-signed by the right key: verifies again (the signature replaced, not added)
    expect((await signBundle(b.root, key)).replaced).toBe(true);
    expect((await check(b.root)).verified).toBe(true);
    expect(await readFile(join(b.root, CHECKSUMS_FILE), 'utf8')).not.toContain(SIGNATURE_FILE);
  });

  it('the checksum check uses the list whose signature was checked, not a second read of it', async () => {
    await using tmp = await tempDir('sealift-sig-');
    const { priv, pub } = p256();
    await writeFile(join(tmp.path, 'k.pem'), pkcs8Pem(priv));
    await writeFile(join(tmp.path, 'k.pub'), spkiPem(pub));
    const b = await craftBundle(join(tmp.path, 'b'));
    await signBundle(b.root, await loadSigningKey(join(tmp.path, 'k.pem'), undefined));
    const archive = await openBundleArchive(b.root);
    try {
      const signed = await verifyBundleSignature(archive, await readVerifyKey(join(tmp.path, 'k.pub')));
      // after the signature check, a file and the list are swapped for altered ones
      await appendFile(join(b.root, 'imagelists', 'crafted.txt'), 'x');
      await resum(b.root);
      const swapped = await openBundleArchive(b.root);
      try {
        expect((await checkBundle(swapped)).files).toBeGreaterThan(0); // the altered list alone passes
        const r = await refusal(() => checkBundle(swapped, { checksums: signed.checksums }));
        expect(r.code).toBe('BUNDLE_INVALID');
        expect(r.message).toMatch(/imagelists\/crafted\.txt: sha256 is/);
      } finally {
        await swapped.close();
      }
    } finally {
      await archive.close();
    }
  });

  it('bundle sign of a tar and of split parts: the signature right after checksums.sha256, every file still there', async () => {
    await using tmp = await tempDir('sealift-sig-');
    const { priv, pub } = p256();
    await writeFile(join(tmp.path, 'k.pem'), pkcs8Pem(priv));
    await writeFile(join(tmp.path, 'k.pub'), spkiPem(pub));
    const key = await loadSigningKey(join(tmp.path, 'k.pem'), undefined);
    const vk = await readVerifyKey(join(tmp.path, 'k.pub'));
    const b = await craftBundle(join(tmp.path, 'b'));
    for (const split of [undefined, 4096]) {
      const out = join(tmp.path, split ? 'split.tar' : 'one.tar');
      const packed = await packBundle({ root: b.root, output: out, ...(split ? { splitSize: split } : {}) });
      const first = packed.files[0]!.path;
      const before = await openBundleArchive(first);
      const paths = [...before.entries.keys()];
      await before.close();
      const r = await signBundle(first, key);
      expect(r.replaced).toBe(false);
      expect(r.files.length).toBeGreaterThanOrEqual(packed.files.length);
      if (split) expect(r.files.length).toBeGreaterThan(2);
      const after = await openBundleArchive(first);
      try {
        const order = [...after.entries.keys()];
        expect(order.slice(0, 2)).toEqual([CHECKSUMS_FILE, SIGNATURE_FILE]);
        expect(order.filter((p) => p !== SIGNATURE_FILE)).toEqual(paths);
        expect((await verifyBundleSignature(after, vk)).check.verified).toBe(true);
      } finally {
        await after.close();
      }
      // the list beside the tar names the new bytes
      const sums = await readFile(`${out}.sha256`, 'utf8');
      for (const f of r.files) expect(sums).toContain(`${f.sha256}  ${f.path.split('/').pop()}`);
      // signing again replaces the entry: the tar does not grow
      const again = await signBundle(first, key);
      expect(again.replaced).toBe(true);
      expect(again.files.reduce((n, f) => n + f.size, 0)).toBe(r.files.reduce((n, f) => n + f.size, 0));
    }
    // a compressed bundle has no tar offsets to rewrite: refused, untouched
    const gz = join(tmp.path, 'one.tar.gz');
    await writeFile(gz, gzipSync(await readFile(join(tmp.path, 'one.tar'))));
    const before = await readFile(gz);
    const refused = await refusal(() => signBundle(gz, key));
    expect(refused.code).toBe('USAGE');
    expect(refused.message).toMatch(/is gzip-compressed; bundle sign rewrites an uncompressed tar/);
    expect((await readFile(gz)).equals(before)).toBe(true);
  });
});
