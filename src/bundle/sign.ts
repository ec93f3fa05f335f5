// Signing bundles: the private key (a PEM ECDSA P-256 key, or cosign's own encrypted key pair),
// signChecksums (what `bundle --sign-key` calls on checksums.sha256 before the tar is written),
// and signBundle (`bundle sign`: an existing bundle signed in place). The signature's format and
// its check live in src/bundle-format/signature.ts.
//
// cosign's encrypted key ("ENCRYPTED SIGSTORE PRIVATE KEY", earlier "ENCRYPTED COSIGN PRIVATE
// KEY") is a PEM around JSON (go-securesystemslib's `encrypted`): scrypt (N 2^15, 2^16 or 2^17,
// r 8, p 1; other parameters refused, as cosign does) derives a 32-byte key from COSIGN_PASSWORD
// and the salt, which opens a NaCl secretbox (XSalsa20-Poly1305) holding the PKCS#8 DER key.
// scrypt comes from node:crypto (OpenSSL); the secretbox from @noble/ciphers (audited, no
// dependencies): no hand-written cryptography. Neither the key nor the password is ever put into
// a message, an event, a result or the bundle.
import { createHash, createPrivateKey, createPublicKey, scrypt, sign, type KeyObject } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { xsalsa20poly1305 } from '@noble/ciphers/salsa.js';
import { Header } from 'tar';
import { ensureFreeSpace, reportDiskFull } from '../disk.ts';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { tempName, writeFileAtomic, fsyncDir } from '../fs-atomic.ts';
import { acquireWorkLock } from '../work-lock.ts';
import {
  CHECKSUMS_FILE,
  SIGNATURE_FILE,
  checkBundle,
  encodeSignature,
  keyFingerprint,
  openBundleArchive,
  pemLabel,
  requireP256,
  verifyChecksumsSignature,
  type BundleArchive,
} from '../bundle-format/index.ts';

/** A loaded private key. Only the file and the public key's fingerprint are ever shown. */
export class SigningKey {
  readonly file: string;
  readonly fingerprint: string;
  readonly #key: KeyObject;
  readonly #public: KeyObject;
  constructor(file: string, key: KeyObject) {
    this.file = file;
    this.#key = key;
    this.#public = createPublicKey(key);
    this.fingerprint = keyFingerprint(this.#public);
  }
  /** DER ECDSA over SHA-256 of `data` (signChecksums checks it with the public half). */
  signDer(data: Uint8Array): Buffer {
    return sign('sha256', data, { key: this.#key, dsaEncoding: 'der' });
  }
  get publicKey(): KeyObject {
    return this.#public;
  }
  toJSON(): { key: string; fingerprint: string } {
    return { key: this.file, fingerprint: this.fingerprint };
  }
}

const FLAG = '--sign-key';
const ENCRYPTED_LABELS = new Set(['ENCRYPTED SIGSTORE PRIVATE KEY', 'ENCRYPTED COSIGN PRIVATE KEY']);
/** go-securesystemslib's three scrypt strengths (legacy, standard, OWASP); anything else is refused. */
const SCRYPT_N = new Set([32768, 65536, 131072]);

function keyInvalid(file: string, message: string, hint: string): SealiftError {
  return new SealiftError('KEY_INVALID', `${FLAG} ${file}: ${message}`, { hint, details: { file } });
}

const P256_HINT =
  'Give an ECDSA P-256 private key: cosign.key from `cosign generate-key-pair` (password in COSIGN_PASSWORD), or a PEM key from `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`.';

interface EncryptedKeyJson {
  kdf?: { name?: string; params?: { N?: number; r?: number; p?: number }; salt?: string };
  cipher?: { name?: string; nonce?: string };
  ciphertext?: string;
}

function scryptKey(password: string, salt: Buffer, N: number, r: number, p: number): Promise<Buffer> {
  return new Promise((resolve, reject) =>
    scrypt(password, salt, 32, { N, r, p, maxmem: 256 * N * r + (1 << 20) }, (e, k) => (e ? reject(e) : resolve(k))),
  );
}

/** The PKCS#8 DER inside cosign's encrypted PEM, opened with the password. */
async function decryptCosignKey(file: string, pem: string, password: string | undefined): Promise<Buffer> {
  if (password === undefined)
    throw keyInvalid(
      file,
      'is an encrypted cosign key and COSIGN_PASSWORD is not set',
      'Set COSIGN_PASSWORD to the key\'s password (empty for a key made with an empty one: COSIGN_PASSWORD="").',
    );
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  let data: EncryptedKeyJson;
  try {
    data = JSON.parse(Buffer.from(body, 'base64').toString('utf8')) as EncryptedKeyJson;
  } catch {
    throw keyInvalid(file, 'is not a cosign key file (its PEM body is no JSON)', P256_HINT);
  }
  const { N = 0, r = 0, p = 0 } = data.kdf?.params ?? {};
  if (data.kdf?.name !== 'scrypt' || data.cipher?.name !== 'nacl/secretbox' || !data.ciphertext)
    throw keyInvalid(
      file,
      'is encrypted in a way cosign does not write (expected scrypt and nacl/secretbox)',
      P256_HINT,
    );
  if (!SCRYPT_N.has(N) || r !== 8 || p !== 1)
    throw keyInvalid(file, `has unsupported scrypt parameters (N ${N}, r ${r}, p ${p})`, P256_HINT);
  const salt = Buffer.from(data.kdf.salt ?? '', 'base64');
  const nonce = Buffer.from(data.cipher.nonce ?? '', 'base64');
  if (nonce.length !== 24) throw keyInvalid(file, 'has a secretbox nonce that is not 24 bytes', P256_HINT);
  const secret = await scryptKey(password, salt, N, r, p);
  try {
    return Buffer.from(xsalsa20poly1305(secret, nonce).decrypt(Buffer.from(data.ciphertext, 'base64')));
  } catch {
    throw keyInvalid(
      file,
      'cannot be decrypted with the password in COSIGN_PASSWORD (wrong password, or the file was altered)',
      'Set COSIGN_PASSWORD to the password given to `cosign generate-key-pair` for this key.',
    );
  } finally {
    secret.fill(0);
  }
}

/**
 * Reads the private key `--sign-key` names: PKCS#8 or SEC 1 PEM ECDSA P-256, or cosign's encrypted
 * key pair (password from `password`, the caller's COSIGN_PASSWORD). Every refusal names the file
 * and what it holds instead, never its bytes.
 */
export async function loadSigningKey(file: string, password: string | undefined): Promise<SigningKey> {
  const pem = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new SealiftError(
      e.code === 'ENOENT' ? 'NOT_FOUND' : 'KEY_INVALID',
      `${FLAG} ${file}: cannot be read (${e.code ?? errorMessage(e)})`,
      {
        hint: P256_HINT,
        details: { file },
      },
    );
  });
  const label = pemLabel(pem);
  let key: KeyObject;
  if (label === undefined) throw keyInvalid(file, 'is not a PEM file', P256_HINT);
  if (label === 'PUBLIC KEY' || label === 'CERTIFICATE')
    throw keyInvalid(
      file,
      `is a ${label === 'PUBLIC KEY' ? 'public key' : 'certificate'}; ${FLAG} takes the private key (the public one is for --verify-key at the site)`,
      P256_HINT,
    );
  if (label === 'RSA PRIVATE KEY')
    throw keyInvalid(file, 'is an RSA key; sealift signs bundles with ECDSA P-256 only', P256_HINT);
  if (label === 'ENCRYPTED PRIVATE KEY')
    throw keyInvalid(
      file,
      'is a password-protected PKCS#8 key (openssl), which cosign does not read either',
      'Import it into a cosign key pair (`cosign import-key-pair --key KEY`) or give the unencrypted PEM key.',
    );
  if (ENCRYPTED_LABELS.has(label)) {
    const der = await decryptCosignKey(file, pem, password);
    try {
      key = createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
    } catch {
      throw keyInvalid(file, 'opens, but does not hold a PKCS#8 private key', P256_HINT);
    } finally {
      der.fill(0);
    }
  } else if (label === 'PRIVATE KEY' || label === 'EC PRIVATE KEY') {
    try {
      key = createPrivateKey({ key: pem, format: 'pem' });
    } catch {
      throw keyInvalid(file, `PEM "${label}" is not a private key sealift can read`, P256_HINT);
    }
  } else throw keyInvalid(file, `is a PEM "${label}", not a private key`, P256_HINT);
  requireP256(key, file, FLAG);
  return new SigningKey(file, key);
}

/**
 * checksums.sha256.sig's bytes for these checksums.sha256 bytes (cosign's sign-blob format),
 * verified with the key's public half before they are written anywhere.
 */
export function signChecksums(checksums: Uint8Array, key: SigningKey): Buffer {
  const sig = Buffer.from(encodeSignature(key.signDer(checksums)));
  verifyChecksumsSignature(
    Buffer.from(checksums),
    sig,
    { file: key.file, fingerprint: key.fingerprint, key: key.publicKey },
    key.file,
  );
  return sig;
}

/** Writes checksums.sha256.sig beside checksums.sha256 in a bundle directory. */
export async function signBundleDir(root: string, key: SigningKey): Promise<void> {
  await writeFileAtomic(join(root, SIGNATURE_FILE), signChecksums(await readFile(join(root, CHECKSUMS_FILE)), key));
}

// ---------------------------------------------------------------------------------------------
// `sealift bundle sign`: an existing bundle

export interface SignBundleResult {
  bundle: string;
  kind: BundleArchive['kind'];
  key: string;
  fingerprint: string;
  /** the bundle had a signature, which this one replaced */
  replaced: boolean;
  /** the files written: the tar or parts (with their sha256), or the .sig of a directory */
  files: { path: string; size: number; sha256: string }[];
  checksumFile?: string;
}

const BLOCK = 512;
const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;

/**
 * Signs a bundle made before (tar, split parts or directory), after the same check load runs, so
 * a damaged bundle is never signed. A directory gets the .sig file. A tar has no room after
 * checksums.sha256, its first entry, so it is rewritten: its first entry, the signature's entry,
 * then the rest of the old bytes as they are, streamed to temp names (the parts at the old part
 * size), fsynced and renamed over the old files, and <name>.tar.sha256 written anew. That costs
 * a read of the whole bundle for the check and a read and write of it for the rewrite, with the
 * bundle's size free beside it; signing at `bundle --sign-key` time costs nothing of this.
 */
export async function signBundle(input: string, key: SigningKey, opts: RunOptions = {}): Promise<SignBundleResult> {
  const onEvent = opts.onEvent ?? noEvents;
  await refuseCompressed(input);
  const archive = await openBundleArchive(input);
  try {
    onEvent({ type: 'phase', name: 'checking bundle before signing' });
    await checkBundle(archive, { onEvent, ...(opts.signal ? { signal: opts.signal } : {}) });
    const checksums = await archive.readSmall(CHECKSUMS_FILE);
    const sig = signChecksums(checksums, key);
    const replaced = archive.lookup(SIGNATURE_FILE) !== undefined;
    const base = { bundle: input, kind: archive.kind, key: key.file, fingerprint: key.fingerprint, replaced };
    if (archive.kind === 'directory') {
      const path = join(archive.location, SIGNATURE_FILE);
      await writeFileAtomic(path, sig);
      return { ...base, files: [{ path, size: sig.length, sha256: createHash('sha256').update(sig).digest('hex') }] };
    }
    const stem = archive.files[0]!.replace(/\.part-\d{3,}$/, '');
    const lock = await acquireWorkLock(stem.replace(/\.tar$/, ''), `bundle ${stem}`);
    try {
      return { ...base, ...(await rewriteTar(archive, stem, sig, opts)) };
    } finally {
      await lock.release();
    }
  } finally {
    await archive.close();
  }
}

/** gzip and zstd magic: the rewrite copies tar offsets, which a compressed stream does not have. */
async function refuseCompressed(input: string): Promise<void> {
  if ((await stat(input)).isDirectory()) return;
  const fh = await open(input, 'r');
  const magic = Buffer.alloc(4);
  try {
    await fh.read(magic, 0, 4, 0);
  } finally {
    await fh.close();
  }
  const kind =
    magic[0] === 0x1f && magic[1] === 0x8b
      ? 'gzip'
      : magic.equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd]))
        ? 'zstd'
        : undefined;
  if (kind)
    throw new SealiftError(
      'USAGE',
      `${input} is ${kind}-compressed; bundle sign rewrites an uncompressed tar or a directory`,
      {
        hint: 'Sign it while it is made (`sealift bundle ... --sign-key KEY`), or sign the uncompressed .tar (or the extracted directory) and compress it afterwards.',
      },
    );
}

/** The new tar: [0, end of checksums.sha256) + the signature entry + the rest after any old one. */
async function rewriteTar(
  archive: BundleArchive,
  stem: string,
  sig: Buffer,
  opts: RunOptions,
): Promise<Pick<SignBundleResult, 'files' | 'checksumFile'>> {
  const onEvent = opts.onEvent ?? noEvents;
  const order = [...archive.entries.values()].filter((e) => e.type === 'file');
  const sums = order[0];
  if (sums?.path !== CHECKSUMS_FILE)
    throw new SealiftError(
      'BUNDLE_INVALID',
      `${archive.location}: ${CHECKSUMS_FILE} is not the tar's first entry (the bundle was made by an older sealift), so there is no place for its signature`,
      {
        hint: 'Make the bundle again with this sealift, signed at once: `sealift bundle ... --sign-key KEY`. Or sign the extracted directory: `sealift bundle sign DIR --key KEY`.',
      },
    );
  const old = order[1]?.path === SIGNATURE_FILE ? order[1] : undefined;
  const head = sums.offset + padded(sums.size);
  const restStart = old ? old.offset + padded(old.size) : head;
  const sizes = await Promise.all(archive.files.map(async (f) => (await stat(f)).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  // the checksums entry's own header (no PAX header: the name is short) gives owner, mode and time
  const first = await readRange(archive.files, sizes, sums.offset - BLOCK, BLOCK);
  const h = new Header(first);
  const sigHeader = Buffer.alloc(BLOCK);
  new Header({
    path: SIGNATURE_FILE,
    mode: h.mode ?? 0o644,
    uid: h.uid ?? 0,
    gid: h.gid ?? 0,
    size: sig.length,
    mtime: h.mtime ?? new Date(0),
    type: 'File',
    uname: h.uname ?? '',
    gname: h.gname ?? '',
  }).encode(sigHeader, 0);
  const sigEntry = Buffer.concat([sigHeader, sig, Buffer.alloc(padded(sig.length) - sig.length)]);
  const newTotal = head + sigEntry.length + (total - restStart);
  const dir = dirname(stem);
  await ensureFreeSpace(dir, newTotal, `signing ${basename(stem)}`);
  // one part: one tar; more: parts of the first part's size, as bundle --split-size wrote them
  const partSize = archive.files.length > 1 ? sizes[0]! : Number.POSITIVE_INFINITY;
  const writer = new PartsWriter(stem, partSize, archive.files.length > 1);
  onEvent({ type: 'phase', name: 'signing bundle', total: 1 });
  onEvent({ type: 'blob:start', digest: 'tar', size: newTotal });
  const progress = (n: number) => onEvent({ type: 'blob:progress', digest: 'tar', bytes: n });
  try {
    await reportDiskFull(dir, `signing ${basename(stem)}`, async () => {
      await copyRange(archive.files, sizes, 0, head, writer, progress, opts.signal);
      await writer.write(sigEntry);
      await copyRange(archive.files, sizes, restStart, total - restStart, writer, progress, opts.signal);
      await writer.end();
    });
  } catch (e) {
    await writer.abort();
    throw e;
  }
  // swap in: the new files over the old ones (the new tar is only ever longer, so no old part is
  // left over). One rename per part: a crash between two leaves a mix that bundle verify names.
  for (const p of writer.parts) await rename(p.tmp, p.final);
  await fsyncDir(dir);
  const checksumFile = `${stem}.sha256`;
  await writeFileAtomic(checksumFile, writer.parts.map((p) => `${p.sha256}  ${basename(p.final)}\n`).join(''));
  onEvent({ type: 'blob:done', digest: 'tar', size: newTotal });
  return { files: writer.parts.map((p) => ({ path: p.final, size: p.size, sha256: p.sha256 })), checksumFile };
}

async function readRange(
  files: readonly string[],
  sizes: readonly number[],
  offset: number,
  length: number,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  await copyRange(files, sizes, offset, length, { write: async (b) => void chunks.push(Buffer.from(b)) }, () => {});
  return Buffer.concat(chunks);
}

/** Streams [offset, offset+length) of the tar (across its parts) into `out`. */
async function copyRange(
  files: readonly string[],
  sizes: readonly number[],
  offset: number,
  length: number,
  out: { write(b: Buffer): Promise<void> },
  onBytes: (n: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  let start = 0;
  const end = offset + length;
  for (let i = 0; i < files.length; i++) {
    const pStart = start;
    const pEnd = start + sizes[i]!;
    start = pEnd;
    const from = Math.max(offset, pStart);
    const to = Math.min(end, pEnd);
    if (from >= to) continue;
    for await (const chunk of createReadStream(files[i]!, {
      start: from - pStart,
      end: to - pStart - 1,
      highWaterMark: 1 << 20,
    })) {
      signal?.throwIfAborted();
      await out.write(chunk as Buffer);
      onBytes((chunk as Buffer).length);
    }
  }
}

/** Bytes into `<stem>` or `<stem>.part-NNN` files of `partSize`, at temp names, each hashed and fsynced. */
class PartsWriter {
  readonly parts: { tmp: string; final: string; size: number; sha256: string }[] = [];
  private fh: Awaited<ReturnType<typeof open>> | undefined;
  private hash = createHash('sha256');
  private size = 0;
  private readonly stem: string;
  private readonly partSize: number;
  private readonly split: boolean;
  constructor(stem: string, partSize: number, split: boolean) {
    this.stem = stem;
    this.partSize = partSize;
    this.split = split;
  }

  private async next(): Promise<void> {
    await this.close();
    const final = this.split ? `${this.stem}.part-${String(this.parts.length).padStart(3, '0')}` : this.stem;
    const tmp = tempName(final);
    this.fh = await open(tmp, 'w');
    this.hash = createHash('sha256');
    this.size = 0;
    this.parts.push({ tmp, final, size: 0, sha256: '' });
  }

  private async close(): Promise<void> {
    if (!this.fh) return;
    await this.fh.sync();
    await this.fh.close();
    this.fh = undefined;
    const p = this.parts.at(-1)!;
    p.size = this.size;
    p.sha256 = this.hash.digest('hex');
  }

  async write(b: Buffer): Promise<void> {
    let chunk = b;
    if (!this.fh) await this.next();
    while (chunk.length > 0) {
      if (this.size >= this.partSize) await this.next();
      const piece = chunk.subarray(0, Math.min(chunk.length, this.partSize - this.size));
      await this.fh!.write(piece);
      this.hash.update(piece);
      this.size += piece.length;
      chunk = chunk.subarray(piece.length);
    }
  }

  async end(): Promise<void> {
    await this.close();
  }

  async abort(): Promise<void> {
    await this.fh?.close().catch(() => undefined);
    this.fh = undefined;
    await Promise.all(this.parts.map((p) => rm(p.tmp, { force: true })));
  }
}
