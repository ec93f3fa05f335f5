// The OCI distribution protocol client, per registry host: the protocol steps by name (resolve,
// fetchManifest, fetchBlob, blobExists, mountBlob, pushBlob, pushManifest), reading through
// source mirrors. Beneath it: transport.ts (one exchange, redirects, error classification, the
// one retry policy), auth.ts (challenges, tokens, credentials) and upload.ts (monolithic and
// chunked, resumable blob uploads).
import { pipeline, type Readable } from 'node:stream';
import { SealiftError } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import type { ImageReference } from './reference.ts';
import { RegistryAuth, type EndpointSendOptions } from './auth.ts';
import { dockerCredentials, type CredentialLookup } from './credentials.ts';
import {
  closeConnections,
  discard,
  header,
  networkError,
  readLimited,
  registryError,
  retrying,
  type HttpResponse,
  type RetryPolicy,
  type TlsConfig,
} from './transport.ts';
import {
  MANIFEST_MEDIA_TYPES,
  MediaTypes,
  MAX_MANIFEST_BYTES,
  parseManifest,
  isDigest,
  type Descriptor,
  type Digest,
  type RawManifest,
} from './types.ts';
import { BlobUpload, type UploadSettings } from './upload.ts';
import { VerifyStream } from './verify.ts';

export interface RegistryHostConfig extends TlsConfig {
  /** speak http:// instead of https:// */
  plainHttp?: boolean;
  /** pull through these endpoints (`host[:port][/path-prefix]`) instead of the host itself */
  mirrors?: string[];
  /** when every mirror fails, also try the host itself (default false: a mirror is usually there because the host is unreachable) */
  mirrorFallback?: boolean;
}

export interface RegistryOptions {
  /** per-host settings, keyed by `host[:port]` as written in references */
  hosts?: Record<string, RegistryHostConfig>;
  credentials?: CredentialLookup;
  retry?: Partial<RetryPolicy>;
  /** when blobs are uploaded in chunks, and how large the chunks are */
  upload?: Partial<UploadSettings>;
  onEvent?: EventSink;
  userAgent?: string;
}

export type { RetryPolicy };

/** Closes the pooled connections (tests and the CLI call this when done). */
export const closeRegistryConnections = closeConnections;

/** Where requests for a registry name really go: docker.io is served by registry-1.docker.io. */
export function registryEndpointHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

/** One network endpoint: a registry host or a mirror, with its own auth state. */
export class Endpoint {
  readonly name: string;
  readonly origin: string;
  readonly prefix: string;
  readonly auth: RegistryAuth;

  constructor(spec: string, cfg: RegistryHostConfig, opts: EndpointSendOptions & { credentials: CredentialLookup }) {
    const slash = spec.indexOf('/');
    const host = slash < 0 ? spec : spec.slice(0, slash);
    this.prefix = slash < 0 ? '' : `${spec.slice(slash + 1).replace(/\/+$/, '')}/`;
    this.name = host;
    this.origin = `${cfg.plainHttp ? 'http' : 'https'}://${registryEndpointHost(host)}`;
    const { credentials, ...send } = opts;
    this.auth = new RegistryAuth(host, this.origin, credentials, {
      ...send,
      tls: {
        ...(cfg.caFile ? { caFile: cfg.caFile } : {}),
        ...(cfg.insecureSkipVerify ? { insecureSkipVerify: true } : {}),
      },
    });
  }

  path(repo: string, rest: string): string {
    return `${this.origin}/v2/${this.prefix}${repo}/${rest}`;
  }

  request: RegistryAuth['request'] = (o, describe) =>
    this.auth.request({ host: this.name, ...o }, describe ?? ((res) => registryError(res, o.method, this.name, o.op)));
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}
function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
}

/** A body read to the end or, when it is cut short, a temporary NETWORK_ERROR naming the host. */
async function readBody(
  res: HttpResponse,
  limit: number,
  o: { op: string; method: string; host: string },
): Promise<Buffer> {
  try {
    return await readLimited(res.body, limit);
  } catch (e) {
    throw networkError(e, { ...o, url: res.url });
  }
}

/**
 * A registry host: pull (through mirrors when configured) and push. `repo` arguments are
 * repository paths inside the registry (`istio/pilot`), refs are tags or digests.
 */
export class RegistryClient {
  readonly host: string;
  private readonly origin: Endpoint;
  private readonly readers: Endpoint[];
  private readonly onEvent: EventSink;
  private readonly retry: Partial<RetryPolicy>;
  private readonly upload: Partial<UploadSettings>;

  constructor(host: string, opts: RegistryOptions = {}) {
    this.host = host;
    const hosts = opts.hosts ?? {};
    const cfg = hosts[host] ?? {};
    this.onEvent = opts.onEvent ?? noEvents;
    this.retry = opts.retry ?? {};
    this.upload = opts.upload ?? {};
    const shared = {
      onEvent: this.onEvent,
      userAgent: opts.userAgent ?? 'sealift/0.1',
      retry: this.retry,
      credentials: opts.credentials ?? dockerCredentials(),
    };
    this.origin = new Endpoint(host, cfg, shared);
    const mirrors = (cfg.mirrors ?? []).map((m) => new Endpoint(m, hosts[m.split('/')[0] ?? m] ?? {}, shared));
    this.readers = mirrors.length ? (cfg.mirrorFallback ? [...mirrors, this.origin] : mirrors) : [this.origin];
  }

  /** Options for a retried step of this client (used where there is no enclosing budget). */
  private retrying<T>(op: string, signal: AbortSignal | undefined, attempt: () => Promise<T>): Promise<T> {
    return retrying(op, { policy: this.retry, onEvent: this.onEvent, ...(signal ? { signal } : {}) }, attempt);
  }

  /** Runs a pull step against each reader endpoint in turn (mirrors first), returning the first success. */
  private async read<T>(fn: (e: Endpoint) => Promise<T>): Promise<T> {
    let first: unknown;
    for (const e of this.readers) {
      try {
        return await fn(e);
      } catch (err) {
        first ??= err;
        const code = err instanceof SealiftError ? err.code : '';
        if (code === 'DIGEST_MISMATCH' || code === 'INTERNAL') throw err;
        if (this.readers.length > 1)
          this.onEvent({
            type: 'warn',
            code,
            message: `mirror ${e.name} failed for ${this.host}: ${(err as Error).message}`,
          });
      }
    }
    throw first;
  }

  /** GET /v2/ : is the registry there, and do our credentials work. */
  async ping(signal?: AbortSignal): Promise<void> {
    await this.read(async (e) => {
      const res = await e.request({
        method: 'GET',
        url: `${e.origin}/v2/`,
        op: `ping ${e.name}`,
        scopes: [],
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 200) throw await registryError(res, 'GET', e.name, `ping ${e.name}`);
      await discard(res);
    });
  }

  /** HEAD the manifest: the descriptor a tag or digest resolves to (GET when the registry gives no digest). */
  async resolve(
    ref: ImageReference | { repository: string; selector: string },
    signal?: AbortSignal,
  ): Promise<Descriptor> {
    const repo = ref.repository;
    const selector = 'selector' in ref ? ref.selector : (ref.digest ?? ref.tag ?? 'latest');
    return this.read(async (e) => {
      const res = await e.request({
        method: 'HEAD',
        url: e.path(repo, `manifests/${selector}`),
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
        op: `resolve ${this.host}/${repo}:${selector}`,
        scopes: [pullScope(repo)],
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 200) throw await registryError(res, 'HEAD', e.name, `${this.host}/${repo}:${selector}`);
      await discard(res);
      const digest = header(res, 'docker-content-digest');
      const size = Number(header(res, 'content-length'));
      const mediaType = header(res, 'content-type')?.split(';')[0];
      if (digest && isDigest(digest) && Number.isFinite(size) && mediaType) {
        if (isDigest(selector) && digest !== selector) {
          throw new SealiftError(
            'DIGEST_MISMATCH',
            `${this.host}/${repo}@${selector}: the registry resolved it to ${digest}`,
          );
        }
        return { mediaType, digest, size };
      }
      const m = await this.fetchManifest(repo, selector, signal);
      return { mediaType: m.mediaType, digest: m.digest, size: m.bytes.byteLength };
    });
  }

  /**
   * GET a manifest or index byte for byte; a digest selector is verified against the bytes.
   * The request and the reading of its body are one retried step: a body cut short is retried.
   */
  async fetchManifest(repo: string, selector: string, signal?: AbortSignal): Promise<RawManifest> {
    const where = `${this.host}/${repo}${isDigest(selector) ? '@' : ':'}${selector}`;
    return this.read((e) =>
      this.retrying(`manifest ${where}`, signal, async () => {
        const res = await e.request({
          method: 'GET',
          url: e.path(repo, `manifests/${selector}`),
          headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
          op: `manifest ${where}`,
          scopes: [pullScope(repo)],
          ...(signal ? { signal } : {}),
        });
        if (res.status !== 200) throw await registryError(res, 'GET', e.name, where);
        const bytes = await readBody(res, MAX_MANIFEST_BYTES, { op: `manifest ${where}`, method: 'GET', host: e.name });
        const served = header(res, 'docker-content-digest');
        const raw = parseManifest(bytes, {
          where,
          mediaType: header(res, 'content-type') ?? '',
          ...(isDigest(selector) ? { expected: selector as Digest } : {}),
        });
        if (!isDigest(selector) && served && isDigest(served) && served !== raw.digest) {
          throw new SealiftError(
            'DIGEST_MISMATCH',
            `${where}: registry says ${served} but the bytes hash to ${raw.digest}`,
          );
        }
        return raw;
      }),
    );
  }

  /**
   * GET a blob as a stream that fails unless exactly `desc.size` bytes hashing to `desc.digest`
   * arrive. Status errors are retried before the body starts; a body cut short is a
   * NETWORK_ERROR the caller retries.
   */
  async fetchBlob(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: { signal?: AbortSignal; onBytes?: (n: number) => void } = {},
  ): Promise<Readable> {
    return this.read(async (e) => {
      const where = `${this.host}/${repo}@${desc.digest}`;
      const res = await e.request({
        method: 'GET',
        url: e.path(repo, `blobs/${desc.digest}`),
        op: `blob ${where}`,
        scopes: [pullScope(repo)],
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (res.status !== 200) throw await registryError(res, 'GET', e.name, where);
      const verify = new VerifyStream(desc, { where, ...(opts.onBytes ? { onBytes: opts.onBytes } : {}) });
      pipeline(res.body, verify, () => undefined);
      return verify;
    });
  }

  /**
   * GET the rest of a blob from `offset` (Range). The raw bytes are returned for the caller to
   * verify together with what it already has; undefined when the registry ignores the range.
   */
  async fetchBlobFrom(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    offset: number,
    signal?: AbortSignal,
  ): Promise<Readable | undefined> {
    return this.read(async (e) => {
      const where = `${this.host}/${repo}@${desc.digest}`;
      const res = await e.request({
        method: 'GET',
        url: e.path(repo, `blobs/${desc.digest}`),
        headers: { range: `bytes=${offset}-${desc.size - 1}` },
        op: `blob ${where} from byte ${offset}`,
        scopes: [pullScope(repo)],
        ...(signal ? { signal } : {}),
      });
      if (res.status === 206 && header(res, 'content-range')?.startsWith(`bytes ${offset}-`)) return res.body;
      if (res.status === 200 || res.status === 206 || res.status === 416) {
        res.body.destroy();
        return undefined;
      }
      throw await registryError(res, 'GET', e.name, where);
    });
  }

  async blobExists(repo: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const e = this.origin;
    const res = await e.request({
      method: 'HEAD',
      url: e.path(repo, `blobs/${digest}`),
      op: `check blob ${this.host}/${repo}@${digest}`,
      scopes: [pushScope(repo)],
      ...(signal ? { signal } : {}),
    });
    await discard(res);
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw await registryError(res, 'HEAD', e.name, `${this.host}/${repo}@${digest}`);
  }

  /** Cross-repository mount (POST ?mount=&from=); false when the registry starts an upload instead. */
  async mountBlob(repo: string, fromRepo: string, digest: Digest, signal?: AbortSignal): Promise<boolean> {
    const e = this.origin;
    const url = `${e.path(repo, 'blobs/uploads/')}?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(fromRepo)}`;
    const res = await e.request({
      method: 'POST',
      url,
      op: `mount ${digest} into ${this.host}/${repo}`,
      scopes: [pushScope(repo), pullScope(fromRepo)],
      headers: { 'content-length': '0' },
      ...(signal ? { signal } : {}),
    });
    if (res.status === 201) {
      await discard(res);
      return true;
    }
    if (res.status === 202) {
      await discard(res);
      const loc = header(res, 'location');
      if (loc) {
        const del = await e
          .request({
            method: 'DELETE',
            url: new URL(loc, e.origin).toString(),
            op: 'cancel upload',
            scopes: [pushScope(repo)],
          })
          .catch(() => undefined);
        if (del) await discard(del);
      }
      return false;
    }
    throw await registryError(res, 'POST', e.name, `mount ${digest} into ${this.host}/${repo}`);
  }

  /**
   * Uploads a blob (upload.ts: one PUT below the chunk threshold, else PATCH chunks that resume
   * from the offset the registry reports after a failure). `open` opens the source again for a
   * retry. On abort the upload session is cancelled (DELETE), so no partial upload is left.
   */
  async pushBlob(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    open: Readable | (() => Promise<Readable>),
    signal?: AbortSignal,
  ): Promise<'written'> {
    const e = this.origin;
    const where = `${this.host}/${repo}@${desc.digest}`;
    const upload = new BlobUpload({
      endpoint: e,
      repo,
      scopes: [pushScope(repo)],
      desc,
      open: typeof open === 'function' ? open : oneShot(open),
      where,
      settings: this.upload,
      onEvent: this.onEvent,
      ...(signal ? { signal } : {}),
    });
    try {
      await this.retrying(`push ${where}`, signal, () => upload.attempt());
    } catch (err) {
      await upload.cancel();
      throw err;
    }
    return 'written';
  }

  /** GET /v2/<repo>/tags/list, every page (the registry's `Link: <...>; rel="next"`), in the order served. */
  async listTags(repo: string, signal?: AbortSignal): Promise<string[]> {
    const tags: string[] = [];
    return this.read(async (e) => {
      let url: string | undefined = e.path(repo, 'tags/list?n=1000');
      for (let page = 0; url && page < 1000; page++) {
        const at: string = url;
        const where = `${this.host}/${repo} tags`;
        const body = await this.retrying(`tags ${where}`, signal, async () => {
          const res = await e.request({
            method: 'GET',
            url: at,
            op: `tags ${where}`,
            scopes: [pullScope(repo)],
            ...(signal ? { signal } : {}),
          });
          if (res.status !== 200) throw await registryError(res, 'GET', e.name, where);
          const next = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(res, 'link') ?? '')?.[1];
          const bytes = await readBody(res, MAX_MANIFEST_BYTES, { op: `tags ${where}`, method: 'GET', host: e.name });
          return { bytes, next: next ? new URL(next, e.origin).toString() : undefined };
        });
        let parsed: { tags?: unknown };
        try {
          parsed = JSON.parse(body.bytes.toString('utf8')) as { tags?: unknown };
        } catch {
          throw new SealiftError('REGISTRY_ERROR', `${this.host}/${repo}: the tag list is not JSON`, {
            hint: 'The registry does not serve the distribution API tags/list; give the version with --version.',
          });
        }
        if (Array.isArray(parsed.tags)) tags.push(...parsed.tags.filter((t): t is string => typeof t === 'string'));
        url = body.next;
      }
      return tags;
    });
  }

  async manifestExists(repo: string, selector: string, signal?: AbortSignal): Promise<Descriptor | undefined> {
    try {
      const e = this.origin;
      const res = await e.request({
        method: 'HEAD',
        url: e.path(repo, `manifests/${selector}`),
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
        op: `check manifest ${this.host}/${repo}:${selector}`,
        scopes: [pushScope(repo)],
        ...(signal ? { signal } : {}),
      });
      await discard(res);
      if (res.status === 404) return undefined;
      if (res.status !== 200) throw await registryError(res, 'HEAD', e.name, `${this.host}/${repo}:${selector}`);
      const digest = header(res, 'docker-content-digest');
      return {
        mediaType: header(res, 'content-type')?.split(';')[0] ?? '',
        digest: (digest ?? '') as Digest,
        size: Number(header(res, 'content-length') ?? 0),
      };
    } catch (err) {
      if (err instanceof SealiftError && err.code === 'NOT_FOUND') return undefined;
      throw err;
    }
  }

  /** PUT a manifest's exact bytes under a tag or its digest; the registry's digest must match ours. */
  async pushManifest(
    repo: string,
    selector: string,
    bytes: Uint8Array,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<Digest> {
    return (await this.putManifest(repo, selector, bytes, mediaType, signal)).digest;
  }

  /**
   * PUT a manifest that has a `subject` (by its digest). `indexed`: the registry answered with
   * the OCI-Subject header, so its referrers API lists it; otherwise the pusher must write the
   * fallback tag (distribution spec, "Pushing Manifests with Subject").
   */
  async pushReferrer(
    repo: string,
    raw: Pick<RawManifest, 'bytes' | 'mediaType' | 'digest'>,
    signal?: AbortSignal,
  ): Promise<{ indexed: boolean }> {
    const put = await this.putManifest(repo, raw.digest, raw.bytes, raw.mediaType, signal);
    return { indexed: put.subject !== undefined };
  }

  /**
   * GET /v2/<repo>/referrers/<digest>: the referrers index, every page of it (Link: rel="next"),
   * or undefined when the registry has no referrers API (it answers 404, distribution spec).
   */
  async fetchReferrers(repo: string, digest: Digest, signal?: AbortSignal): Promise<Descriptor[] | undefined> {
    const where = `${this.host}/${repo} referrers of ${digest}`;
    return this.read(async (e) => {
      const out: Descriptor[] = [];
      let url: string | undefined = e.path(repo, `referrers/${digest}`);
      for (let page = 0; url && page < 100; page++) {
        const pageUrl: string = url;
        const body = await this.retrying(where, signal, async () => {
          const res = await e.request({
            method: 'GET',
            url: pageUrl,
            headers: { accept: MediaTypes.ociIndex },
            op: where,
            scopes: [pullScope(repo)],
            ...(signal ? { signal } : {}),
          });
          // the spec's answer of a registry without the API is 404; some answer 400 or 405 to the unknown route
          if (res.status === 404 || res.status === 400 || res.status === 405) {
            await discard(res);
            return undefined;
          }
          if (res.status !== 200) throw await registryError(res, 'GET', e.name, where);
          const bytes = await readBody(res, MAX_MANIFEST_BYTES, { op: where, method: 'GET', host: e.name });
          return { bytes, next: nextLink(header(res, 'link'), pageUrl) };
        });
        if (!body) return page === 0 ? undefined : out;
        const index = parseManifest(body.bytes, { mediaType: MediaTypes.ociIndex, where });
        if (index.kind !== 'index') throw new SealiftError('REGISTRY_ERROR', `${where}: the answer is not an index`);
        out.push(...index.parsed.manifests);
        url = body.next;
      }
      return out;
    });
  }

  private async putManifest(
    repo: string,
    selector: string,
    bytes: Uint8Array,
    mediaType: string,
    signal?: AbortSignal,
  ): Promise<{ digest: Digest; subject?: string }> {
    const e = this.origin;
    const raw = parseManifest(bytes, {
      mediaType,
      where: `${this.host}/${repo}:${selector}`,
      ...(isDigest(selector) ? { expected: selector as Digest } : {}),
    });
    const res = await e.request({
      method: 'PUT',
      url: e.path(repo, `manifests/${selector}`),
      headers: { 'content-type': mediaType },
      body: bytes,
      op: `push manifest ${this.host}/${repo}:${selector}`,
      scopes: [pushScope(repo)],
      ...(signal ? { signal } : {}),
    });
    if (res.status !== 201 && res.status !== 200)
      throw await registryError(res, 'PUT', e.name, `push manifest ${this.host}/${repo}:${selector}`);
    await discard(res);
    const served = header(res, 'docker-content-digest');
    if (served && served !== raw.digest) {
      throw new SealiftError(
        'DIGEST_MISMATCH',
        `${this.host}/${repo}:${selector}: the registry stored the manifest as ${served}, expected ${raw.digest}`,
      );
    }
    const subject = header(res, 'oci-subject');
    return { digest: raw.digest, ...(subject ? { subject } : {}) };
  }
}

/** One client per registry host, sharing options (and connection pools). */
export class RegistryPool {
  private readonly clients = new Map<string, RegistryClient>();
  readonly options: RegistryOptions;
  constructor(options: RegistryOptions = {}) {
    this.options = options;
  }
  client(host: string): RegistryClient {
    let c = this.clients.get(host);
    if (!c) {
      c = new RegistryClient(host, this.options);
      this.clients.set(host, c);
    }
    return c;
  }
}

/** The next page of a paginated answer (RFC 5988 `Link: <url>; rel="next"`), resolved against this one. */
function nextLink(link: string | undefined, base: string): string | undefined {
  const m = link ? /<([^>]+)>\s*;\s*rel="?next"?/.exec(link) : null;
  return m?.[1] ? new URL(m[1], base).toString() : undefined;
}

/** A stream that can be read once: a second open (a retry) is refused as not retryable. */
function oneShot(stream: Readable): () => Promise<Readable> {
  let used = false;
  return async () => {
    if (used)
      throw new SealiftError('NETWORK_ERROR', 'the upload failed and its source stream cannot be read again', {
        details: { temporary: false },
      });
    used = true;
    return stream;
  };
}
