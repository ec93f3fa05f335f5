// checksums.sha256.sig: the bundle's signature, in cosign's `sign-blob` format, so that the real
// cosign checks it at the site as sealift does:
//
//   cosign verify-blob --key PUB --signature checksums.sha256.sig --insecure-ignore-tlog=true checksums.sha256
//
//   file      := base64(der)              standard alphabet, padded, no line feed (cosign writes none,
//                                         and a trailing line feed or CR is tolerated on reading)
//   der       := ASN.1 DER ECDSA-Sig-Value (r, s) over SHA-256(checksums.sha256's bytes)
//   key       := ECDSA P-256 (cosign's default); public keys as PEM (SPKI, "PUBLIC KEY")
//
// checksums.sha256 lists every other file with its sha256, so signing it signs the bundle; the
// signature is not listed in it (it signs the list). Keyless signing (Fulcio certificates, Rekor
// entries) needs a trust root and a transparency log no site has: not part of the format.
//
// This module is the reader's side (a public key, a verdict); the writer signs in src/bundle.
import { createHash, createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SealiftError } from '../errors.ts';
import type { BundleArchive } from './archive.ts';
import { CHECKSUMS_FILE, SIGNATURE_FILE } from './names.ts';

/** A public key to check bundles with: where it came from, and its fingerprint for messages. */
export interface VerifyKey {
  file: string;
  /** sha256 of the key's SPKI DER: names the key without printing it */
  fingerprint: string;
  key: KeyObject;
}

/** What a check of the signature found; `verified` only when a key was given and it verified. */
export interface SignatureCheck {
  signed: boolean;
  verified: boolean;
  key?: string;
  fingerprint?: string;
}

/** The PEM label of the first block in `text` (`PUBLIC KEY`, `ENCRYPTED SIGSTORE PRIVATE KEY`, ...). */
export function pemLabel(text: string): string | undefined {
  return /-----BEGIN ([A-Z0-9 ]+)-----/.exec(text)?.[1];
}

/** sha256:<hex> of a public key's SPKI DER: a name for it that says nothing secret. */
export function keyFingerprint(publicKey: KeyObject): string {
  return `sha256:${createHash('sha256')
    .update(publicKey.export({ type: 'spki', format: 'der' }))
    .digest('hex')}`;
}

/**
 * Refuses any key but ECDSA P-256, naming the file and what it is instead. The key's bytes never
 * go into the message.
 */
export function requireP256(key: KeyObject, file: string, flag: string): void {
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  if (type === 'ec' && curve === 'prime256v1') return;
  const what =
    type === 'ec' ? `an ECDSA key on curve ${curve ?? 'unknown'}` : `an ${type?.toUpperCase() ?? 'unknown'} key`;
  throw new SealiftError(
    'KEY_INVALID',
    `${flag} ${file}: is ${what}; sealift signs and checks bundles with ECDSA P-256 only`,
    {
      hint: 'Use an ECDSA P-256 key pair: `cosign generate-key-pair` (cosign.key, cosign.pub) or `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out bundle.key` (public half: `openssl pkey -in bundle.key -pubout -out bundle.pub`).',
      details: { file, keyType: type ?? null, curve: curve ?? null },
    },
  );
}

/** Reads a PEM public key (cosign.pub, or `openssl pkey -pubout`) for `--verify-key`. */
export async function readVerifyKey(file: string, flag = '--verify-key'): Promise<VerifyKey> {
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new SealiftError(
      e.code === 'ENOENT' ? 'NOT_FOUND' : 'KEY_INVALID',
      `${flag} ${file}: cannot be read (${e.code ?? e.message})`,
      {
        hint: 'Give the PEM public key the bundle was signed for (cosign.pub).',
        details: { file },
      },
    );
  });
  const label = pemLabel(text);
  if (label === undefined || label.includes('PRIVATE KEY')) {
    throw new SealiftError(
      'KEY_INVALID',
      label
        ? `${flag} ${file}: is a private key (PEM "${label}"); ${flag} takes the public key`
        : `${flag} ${file}: is not a PEM public key`,
      {
        hint: 'Give the public half (cosign.pub, or `openssl pkey -in KEY -pubout`); a private key never needs to reach the site.',
        details: { file },
      },
    );
  }
  let key: KeyObject;
  try {
    key = createPublicKey({ key: text, format: 'pem' });
  } catch (e) {
    throw new SealiftError('KEY_INVALID', `${flag} ${file}: PEM "${label}" is not a public key sealift can read`, {
      hint: 'Give a PEM "PUBLIC KEY" (SPKI), as cosign generate-key-pair writes cosign.pub.',
      cause: e,
      details: { file },
    });
  }
  requireP256(key, file, flag);
  return { file, fingerprint: keyFingerprint(key), key };
}

/** The DER signature as the .sig file holds it. */
export function encodeSignature(der: Uint8Array): string {
  return Buffer.from(der).toString('base64');
}

/** The DER bytes of a .sig file's text, or undefined when it is no base64 at all. */
function decodeSignature(bytes: Buffer): Buffer | undefined {
  const text = bytes.toString('latin1').replace(/\r?\n$/, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(text) || text.length % 4 !== 0) return undefined;
  return Buffer.from(text, 'base64');
}

function untrusted(location: string, message: string, hint: string, details: Record<string, unknown>): SealiftError {
  return new SealiftError('BUNDLE_UNTRUSTED', `${location}: ${message}; nothing was loaded from it`, {
    hint,
    details: { ...details, bundle: location },
  });
}

/**
 * The one verdict on a signature: `checksums` (the bytes of checksums.sha256) signed by `key`.
 * `signature` undefined: the bundle carries none. Refuses with BUNDLE_UNTRUSTED; a reader that
 * gets the two files some other way (one sequential read) calls this with their bytes.
 */
export function verifyChecksumsSignature(
  checksums: Buffer,
  signature: Buffer | undefined,
  key: VerifyKey,
  location: string,
): SignatureCheck {
  const details = { key: key.file, fingerprint: key.fingerprint };
  if (signature === undefined) {
    throw untrusted(
      location,
      `the bundle is not signed (it has no ${SIGNATURE_FILE}), and --verify-key ${key.file} requires a signature`,
      'Ask for a signed bundle: the maker signs with `sealift bundle --sign-key KEY`, or signs one made before with `sealift bundle sign BUNDLE --key KEY`.',
      details,
    );
  }
  const der = decodeSignature(signature);
  const ok =
    der !== undefined &&
    der.length > 0 &&
    (() => {
      try {
        return verify('sha256', checksums, { key: key.key, dsaEncoding: 'der' }, der);
      } catch {
        return false; // not a DER ECDSA signature at all
      }
    })();
  if (!ok) {
    throw untrusted(
      location,
      `${SIGNATURE_FILE} does not verify with the key ${key.file} (${key.fingerprint}): the bundle was signed by another key, or ${CHECKSUMS_FILE} was altered after signing`,
      "Do not use this bundle. Check that --verify-key is the public key of the bundle's maker; if it is, the bundle was changed on the way: copy it again from the source.",
      details,
    );
  }
  return { signed: true, verified: true, key: key.file, fingerprint: key.fingerprint };
}

/** Whether the bundle carries a signature (not whether it verifies). */
export function isBundleSigned(archive: BundleArchive): boolean {
  return archive.lookup(SIGNATURE_FILE) !== undefined;
}

/**
 * The check load and `bundle verify` run before anything else when given --verify-key: the bundle's
 * checksums.sha256 signed by `key`. The checksum check that follows covers every other file: give
 * it `checksums`, the bytes that were verified (CheckOptions.checksums), so it checks against them.
 */
export async function verifyBundleSignature(
  archive: BundleArchive,
  key: VerifyKey,
): Promise<{ check: SignatureCheck; checksums: Buffer }> {
  if (!archive.lookup(CHECKSUMS_FILE)) {
    throw untrusted(
      archive.location,
      `there is no ${CHECKSUMS_FILE}, so there is nothing a signature could cover`,
      'Load only bundles made by `sealift bundle`; copy the whole bundle again.',
      { key: key.file, fingerprint: key.fingerprint },
    );
  }
  const checksums = await archive.readSmall(CHECKSUMS_FILE);
  const signature = isBundleSigned(archive) ? await archive.readSmall(SIGNATURE_FILE, 64 * 1024) : undefined;
  return { check: verifyChecksumsSignature(checksums, signature, key, archive.location), checksums };
}
