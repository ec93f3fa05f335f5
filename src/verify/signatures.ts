// verify --signatures: every image of the lock, at the site registry, has a valid cosign
// signature by the given public key, checked offline (no Rekor, no Fulcio: a site has neither).
// A cosign signature is a manifest whose layers are simple-signing payloads
// (`critical.image.docker-manifest-digest` names the signed manifest) with the signature in the
// layer's `dev.cosignproject.cosign/signature` annotation; it is found under the tag
// `sha256-<hex>.sig` or as an OCI 1.1 referrer of the image (the referrers API or the
// sha256-<hex> fallback index), both as src/oci/referrers.ts finds them.
//
// The signature itself is checked by node:crypto (OpenSSL): the same primitive cosign's own
// verifier applies to a key pair (ECDSA P-256 with SHA-256 and DER signatures as
// `cosign generate-key-pair` makes, RSA PKCS#1 v1.5, Ed25519). sigstore-js' @sigstore/verify
// verifies Sigstore bundles against a trusted root; cosign's registry signatures are not bundles,
// and wrapping them into one with an empty trust root would be more code than the check.
import { createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pLimit from 'p-limit';
import { SealiftError, errorMessage, isSealiftError } from '../errors.ts';
import type { RunOptions } from '../events.ts';
import { readImageLock } from '../images/lock.ts';
import { siteReference, type NamingScheme } from '../oci/naming.ts';
import { formatImageReference, normalizeImageReference } from '../oci/reference.ts';
import {
  COSIGN_SIGNATURE_ANNOTATION,
  COSIGN_SIGNATURE_ARTIFACT,
  COSIGN_SIMPLESIGNING,
  discoverReferrers,
  referrerDescriptor,
} from '../oci/referrers.ts';
import { RegistryClient, type RegistryHostConfig } from '../oci/registry.ts';
import type { Descriptor, Digest } from '../oci/types.ts';

/** A payload bigger than this is no simple-signing document (cosign's are a few hundred bytes). */
const MAX_PAYLOAD_BYTES = 256 * 1024;

export interface SignatureVerifyOptions extends RunOptions {
  /** the image lock whose images must be signed */
  lock: string;
  registry: { host: string } & RegistryHostConfig;
  scheme: NamingScheme;
  /** PEM public key file (cosign.pub) */
  key: string;
  concurrency?: number;
}

export type SignatureStatus = 'signed' | 'unsigned' | 'invalid' | 'missing' | 'mismatch' | 'error';

export interface ImageSignatureCheck {
  /** the lock's (upstream) reference */
  reference: string;
  /** where the site has it */
  target: string;
  /** what the target resolves to */
  digest?: string;
  status: SignatureStatus;
  /** signatures examined (payload layers found) */
  signatures: number;
  /** signed: by its own signature, or (an index) by one on each of its children */
  via?: 'own' | 'children';
  message?: string;
}

export interface SignatureVerifyResult {
  ok: boolean;
  lock: string;
  registry: string;
  key: string;
  checked: number;
  images: ImageSignatureCheck[];
}

/** Reads a PEM public key; a private key, a certificate-less blob or garbage is refused naming the file. */
export async function readPublicKey(file: string): Promise<KeyObject> {
  let pem: string;
  try {
    pem = await readFile(file, 'utf8');
  } catch (e) {
    throw new SealiftError(
      'USAGE',
      `--key ${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? errorMessage(e)})`,
      {
        hint: 'Give the public key the images were signed for, e.g. cosign.pub.',
      },
    );
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem))
    throw new SealiftError('USAGE', `--key ${file} is a private key; verifying needs the public key`, {
      hint: 'Give the public half (cosign.pub, or `openssl pkey -in KEY -pubout`); the private key never needs to reach the site.',
    });
  try {
    return createPublicKey(pem);
  } catch {
    throw new SealiftError('USAGE', `--key ${file} is not a PEM public key`, {
      hint: 'Give a PEM file starting with -----BEGIN PUBLIC KEY----- (cosign.pub).',
    });
  }
}

/** Does `signature` (base64) over `payload` verify with `key`? */
function signatureValid(key: KeyObject, payload: Buffer, signature: string): boolean {
  const sig = Buffer.from(signature, 'base64');
  const algorithm = key.asymmetricKeyType === 'ed25519' || key.asymmetricKeyType === 'ed448' ? null : 'sha256';
  try {
    return verifySignature(algorithm, payload, key, sig);
  } catch {
    return false;
  }
}

/** The digest a simple-signing payload signs, if it is one. */
function signedDigest(payload: Buffer): string | undefined {
  try {
    const doc = JSON.parse(payload.toString('utf8')) as {
      critical?: { type?: unknown; image?: { 'docker-manifest-digest'?: unknown } };
    };
    const d = doc.critical?.image?.['docker-manifest-digest'];
    return doc.critical?.type === 'cosign container image signature' && typeof d === 'string' ? d : undefined;
  } catch {
    return undefined;
  }
}

async function readPayload(client: RegistryClient, repo: string, d: Descriptor, signal?: AbortSignal): Promise<Buffer> {
  if (d.size > MAX_PAYLOAD_BYTES)
    throw new SealiftError(
      'VERIFY_FAILED',
      `${client.host}/${repo}@${d.digest}: a ${d.size}-byte payload is no signature`,
    );
  const chunks: Buffer[] = [];
  for await (const c of await client.fetchBlob(repo, d, signal ? { signal } : {})) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** What the signatures of `digest` in `repo` say: valid ones by `key`, and why the others are not. */
async function signaturesOf(
  client: RegistryClient,
  repo: string,
  digest: Digest,
  key: KeyObject,
  opts: RunOptions,
): Promise<{ found: number; valid: number; problems: string[] }> {
  const referrers = await discoverReferrers(client, repo, [digest], opts);
  // a fallback index written by a tool that left out artifactType: the manifest itself says
  const candidates = referrers.filter((r) =>
    r.kind === 'tag'
      ? r.tag?.endsWith('.sig')
      : (r.descriptor.artifactType ?? COSIGN_SIGNATURE_ARTIFACT) === COSIGN_SIGNATURE_ARTIFACT,
  );
  let found = 0;
  let valid = 0;
  const problems = new Set<string>();
  for (const c of candidates) {
    // a fallback index may still list a signature deleted since: it signs nothing
    const raw = await client.fetchManifest(repo, c.descriptor.digest, opts.signal).catch((e: unknown) => {
      if (isSealiftError(e) && e.code === 'NOT_FOUND') return undefined;
      throw e;
    });
    if (raw?.kind !== 'manifest') continue;
    if (c.kind === 'subject') {
      if (raw.parsed.subject?.digest !== digest) continue;
      if (referrerDescriptor(raw).artifactType !== COSIGN_SIGNATURE_ARTIFACT) continue;
    }
    for (const layer of raw.parsed.layers) {
      const signature = layer.annotations?.[COSIGN_SIGNATURE_ANNOTATION];
      if (layer.mediaType !== COSIGN_SIMPLESIGNING || !signature) continue;
      found++;
      const payload = await readPayload(client, repo, layer, opts.signal);
      const names = signedDigest(payload);
      if (!signatureValid(key, payload, signature)) problems.add('a signature does not verify with this key');
      else if (names !== digest)
        problems.add(`a signature by this key signs ${names ?? 'no image digest'}, not ${digest}`);
      else valid++;
    }
  }
  return { found, valid, problems: [...problems] };
}

export async function verifyImageSignatures(opts: SignatureVerifyOptions): Promise<SignatureVerifyResult> {
  const key = await readPublicKey(opts.key);
  const lock = await readImageLock(opts.lock);
  const { host, ...config } = opts.registry;
  const client = new RegistryClient(host, {
    hosts: { [host]: config },
    ...(opts.onEvent ? { onEvent: opts.onEvent } : {}),
    retry: { attempts: 3 },
  });
  const limit = pLimit(opts.concurrency ?? 4);
  const images = await Promise.all(
    lock.images.map((entry) =>
      limit(async (): Promise<ImageSignatureCheck> => {
        const site = siteReference(normalizeImageReference(entry.reference, opts.lock), host, opts.scheme);
        const base = { reference: entry.reference, target: formatImageReference(site), signatures: 0 };
        const repo = site.repository;
        try {
          const root = await client.resolve(
            { repository: repo, selector: site.digest ?? site.tag ?? 'latest' },
            opts.signal,
          );
          const at = { ...base, digest: root.digest };
          if (entry.digest && entry.digest !== root.digest)
            return {
              ...at,
              status: 'mismatch',
              message: `${base.target} is ${root.digest}, the lock says ${entry.digest}`,
            };
          const own = await signaturesOf(client, repo, root.digest, key, opts);
          if (own.valid > 0) return { ...at, signatures: own.found, status: 'signed', via: 'own' };
          // an index sealift reduced to some platforms has a digest no signer saw: each child must be signed
          const raw = await client.fetchManifest(repo, root.digest, opts.signal);
          if (raw.kind === 'index' && own.found === 0 && raw.parsed.manifests.length > 0) {
            const children = await Promise.all(
              raw.parsed.manifests.map((m) => signaturesOf(client, repo, m.digest, key, opts)),
            );
            const found = children.reduce((n, c) => n + c.found, 0);
            if (children.every((c) => c.valid > 0))
              return { ...at, signatures: found, status: 'signed', via: 'children' };
            if (found > 0)
              return {
                ...at,
                signatures: found,
                status: 'invalid',
                message: `not every platform of the index has a valid signature by this key (${[...new Set(children.flatMap((c) => c.problems))].join('; ') || 'some have none'})`,
              };
          }
          if (own.found === 0)
            return { ...at, status: 'unsigned', message: `no cosign signature of ${root.digest} in ${host}/${repo}` };
          return { ...at, signatures: own.found, status: 'invalid', message: own.problems.join('; ') };
        } catch (e) {
          if (opts.signal?.aborted) throw e;
          if (isSealiftError(e) && e.code === 'NOT_FOUND')
            return { ...base, status: 'missing', message: `${base.target} is not in the registry` };
          return { ...base, status: 'error', message: errorMessage(e) };
        }
      }),
    ),
  );
  return {
    ok: images.every((i) => i.status === 'signed'),
    lock: opts.lock,
    registry: host,
    key: opts.key,
    checked: images.length,
    images,
  };
}
