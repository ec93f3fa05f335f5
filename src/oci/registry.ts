// A client for the OCI distribution API, per registry host, on undici. Concerns are layered:
// `Endpoint.send` retries (network errors, 5xx, 429 with Retry-After) and follows redirects
// (never sending the registry's Authorization to another host); `Endpoint.request` adds auth
// (anonymous, Basic, Bearer tokens from the WWW-Authenticate challenge, cached per scope);
// `RegistryClient` names the protocol steps and reads through source mirrors.
import { readFileSync } from 'node:fs';
import { pipeline, Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from 'undici';
import { SealiftError, type ErrorCode } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import type { ImageReference } from './reference.ts';
import { dockerCredentials, type Credential, type CredentialLookup } from './credentials.ts';
import {
  MANIFEST_MEDIA_TYPES,
  MAX_MANIFEST_BYTES,
  parseManifest,
  isDigest,
  type Descriptor,
  type Digest,
  type RawManifest,
} from './types.ts';
import { VerifyStream } from './verify.ts';

export interface RegistryHostConfig {
  /** speak http:// instead of https:// */
  plainHttp?: boolean;
  /** PEM file of CA certificates to trust for this host */
  caFile?: string;
  insecureSkipVerify?: boolean;
  /** pull through these endpoints (`host[:port][/path-prefix]`) instead of the host itself */
  mirrors?: string[];
  /** when every mirror fails, also try the host itself (default false: a mirror is usually there because the host is unreachable) */
  mirrorFallback?: boolean;
}

export interface RetryPolicy {
  /** attempts per request, including the first (default 6) */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface RegistryOptions {
  /** per-host settings, keyed by `host[:port]` as written in references */
  hosts?: Record<string, RegistryHostConfig>;
  credentials?: CredentialLookup;
  retry?: Partial<RetryPolicy>;
  onEvent?: EventSink;
  userAgent?: string;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 8000 };
const MAX_RETRY_AFTER_MS = 60_000;
const ERROR_BODY_LIMIT = 64 * 1024;

/** Where requests for a registry name really go: docker.io is served by registry-1.docker.io. */
export function registryEndpointHost(host: string): string {
  return host === 'docker.io' || host === 'index.docker.io' ? 'registry-1.docker.io' : host;
}

type Body = Uint8Array | Readable | (() => Readable);

interface SendOptions {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Body;
  /** statuses returned to the caller instead of thrown (besides 2xx) */
  accept?: number[];
  op: string;
  signal?: AbortSignal;
  /** a stream body cannot be replayed: no retry once it was sent */
  retry?: boolean;
}

interface Response {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  url: string;
}

function header(res: Pick<Response, 'headers'>, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function redact(url: string): string {
  const u = new URL(url);
  u.username = '';
  u.password = '';
  return `${u.origin}${u.pathname}`;
}

const TEMPORARY_NET_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ECONNABORTED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_SOCKET',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_CLOSED',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

export function isTemporaryNetworkError(e: unknown): boolean {
  if (e instanceof SealiftError) return e.code === 'NETWORK_ERROR' || e.details?.temporary === true;
  let cur: unknown = e;
  for (let i = 0; i < 4 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: string }).code;
    if (code && TEMPORARY_NET_CODES.has(code)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  const msg = e instanceof Error ? e.message : '';
  return /other side closed|socket hang up|terminated|premature close/i.test(msg);
}

export function statusIsTemporary(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/** Exponential backoff with jitter: attempt 1 waits about baseDelayMs, doubling up to maxDelayMs. */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1)) * (0.5 + Math.random() / 2);
}

export function retryAfterMs(res: Response): number | undefined {
  const v = header(res, 'retry-after');
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.min(Math.max(secs * 1000, 0), MAX_RETRY_AFTER_MS);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.min(Math.max(at - Date.now(), 0), MAX_RETRY_AFTER_MS);
}

async function readLimited(body: Readable, limit: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    const b = c as Buffer;
    n += b.length;
    if (n > limit) {
      body.destroy();
      throw new SealiftError('REGISTRY_ERROR', `response body exceeds ${limit} bytes`);
    }
    chunks.push(b);
  }
  return Buffer.concat(chunks);
}

async function discard(res: Response): Promise<void> {
  try {
    await res.body.dump({ limit: 256 * 1024 });
  } catch {
    /* the connection is dropped instead */
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason as Error)), { once: true });
  });
}

/** An error from a registry response: status, the registry's own codes, method and a redacted URL. */
async function responseError(res: Response, method: string, registry: string, what: string): Promise<SealiftError> {
  let codes: string[] = [];
  let detail = '';
  try {
    const text = (await readLimited(res.body, ERROR_BODY_LIMIT)).toString('utf8');
    try {
      const j = JSON.parse(text) as { errors?: { code?: string; message?: string }[] };
      codes = (j.errors ?? []).map((x) => x.code ?? '').filter(Boolean);
      detail = (j.errors ?? []).map((x) => `${x.code}: ${x.message}`).join('; ');
    } catch {
      detail = text.trim().slice(0, 200);
    }
  } catch {
    /* body unreadable: status alone */
  }
  let code: ErrorCode = 'REGISTRY_ERROR';
  if (res.status === 404 || codes.some((c) => /_UNKNOWN$/.test(c))) code = 'NOT_FOUND';
  else if (res.status === 401 || res.status === 403 || codes.includes('DENIED') || codes.includes('UNAUTHORIZED'))
    code = 'AUTH_FAILED';
  const temporary = statusIsTemporary(res.status);
  return new SealiftError(
    code,
    `${what}: registry ${registry} answered ${res.status} to ${method} ${redact(res.url)}${detail ? ` (${detail})` : ''}`,
    {
      details: { registry, status: res.status, method, url: redact(res.url), registryCodes: codes, temporary },
      hint:
        code === 'NOT_FOUND'
          ? 'Check the reference (repository, tag or digest) exists in that registry.'
          : code === 'AUTH_FAILED'
            ? `Log in with "docker login ${registry}" or check the credentials for it.`
            : undefined,
    },
  );
}

interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** Parses `Bearer realm="...",service="...",scope="..."` (one challenge; the first wins). */
export function parseChallenge(value: string): Challenge | undefined {
  const m = /^\s*(\w+)\s*(.*)$/s.exec(value);
  if (!m) return undefined;
  const params: Record<string, string> = {};
  const re = /(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?/g;
  for (let p = re.exec(m[2] ?? ''); p; p = re.exec(m[2] ?? '')) {
    params[(p[1] ?? '').toLowerCase()] = (p[2] ?? p[3] ?? '').replace(/\\(.)/g, '$1');
  }
  return { scheme: (m[1] ?? '').toLowerCase(), params };
}

function basicHeader(c: Credential): string {
  return `Basic ${Buffer.from(`${c.username ?? ''}:${c.password ?? ''}`).toString('base64')}`;
}

const agents = new Map<string, Agent>();
export function agentFor(cfg: RegistryHostConfig): Agent {
  const key = `${cfg.caFile ?? ''}|${cfg.insecureSkipVerify ? 1 : 0}`;
  let a = agents.get(key);
  if (!a) {
    a = new Agent({
      connections: 16,
      headersTimeout: 60_000,
      bodyTimeout: 60_000,
      connect: {
        ...(cfg.caFile ? { ca: readFileSync(cfg.caFile) } : {}),
        rejectUnauthorized: !cfg.insecureSkipVerify,
      },
    });
    agents.set(key, a);
  }
  return a;
}

/** Closes the pooled connections (tests and the CLI call this when done). */
export async function closeRegistryConnections(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close().catch(() => undefined)));
}

/** One network endpoint: a registry host or a mirror, with its own auth state. */
class Endpoint {
  readonly name: string;
  readonly origin: string;
  readonly prefix: string;
  private readonly dispatcher: Agent;
  private readonly opts: Required<Pick<RegistryOptions, 'onEvent' | 'userAgent'>> & {
    retry: RetryPolicy;
    credentials: CredentialLookup;
  };
  private readonly credHost: string;
  private basic: string | undefined;
  private readonly tokens = new Map<string, Promise<string>>();
  private challenge: Challenge | undefined;
  private credential: Promise<Credential | undefined> | undefined;

  constructor(spec: string, cfg: RegistryHostConfig, opts: Endpoint['opts']) {
    const slash = spec.indexOf('/');
    const host = slash < 0 ? spec : spec.slice(0, slash);
    this.prefix = slash < 0 ? '' : `${spec.slice(slash + 1).replace(/\/+$/, '')}/`;
    this.name = host;
    this.credHost = host;
    this.origin = `${cfg.plainHttp ? 'http' : 'https'}://${registryEndpointHost(host)}`;
    this.dispatcher = agentFor(cfg);
    this.opts = opts;
  }

  path(repo: string, rest: string): string {
    return `${this.origin}/v2/${this.prefix}${repo}/${rest}`;
  }

  /** One HTTP exchange with retries and redirects; no auth negotiation. */
  async send(o: SendOptions & { auth?: string }): Promise<Response> {
    const { attempts } = this.opts.retry;
    for (let attempt = 1; ; attempt++) {
      let res: Response | undefined;
      let failure: unknown;
      try {
        res = await this.exchange(o);
      } catch (e) {
        failure = e;
      }
      const canRetry = o.retry !== false && attempt < attempts;
      if (res && !statusIsTemporary(res.status)) return res;
      if (res && !canRetry) return res;
      if (failure !== undefined && (!canRetry || !isTemporaryNetworkError(failure))) {
        if (isTemporaryNetworkError(failure) || !(failure instanceof SealiftError))
          throw this.networkError(o, failure, attempt);
        throw failure;
      }
      const backoff = backoffMs(this.opts.retry, attempt);
      const delayMs = Math.round(res ? (retryAfterMs(res) ?? backoff) : backoff);
      const reason = res ? `${res.status} from ${this.name}` : (failure as Error).message;
      if (res) await discard(res);
      this.opts.onEvent({ type: 'retry', op: o.op, attempt, delayMs, reason });
      await sleep(delayMs, o.signal);
    }
  }

  private networkError(o: SendOptions, e: unknown, attempts: number): SealiftError {
    const msg = e instanceof Error ? e.message : String(e);
    const tls = /certificate|self.signed|SSL|TLS|wrong version number|EPROTO/i.test(
      msg + String((e as { code?: string }).code ?? ''),
    );
    return new SealiftError(
      'NETWORK_ERROR',
      `${o.op}: ${o.method} ${redact(o.url)} failed after ${attempts} attempt(s): ${msg}`,
      {
        cause: e,
        details: { registry: this.name, temporary: true },
        hint: tls
          ? `If ${this.name} speaks plain HTTP, mark it so (--plain-http ${this.name}); for a private CA give --ca-file ${this.name}=PATH.`
          : `Check that ${this.name} is reachable from this host; a re-run continues where this one stopped.`,
      },
    );
  }

  private async exchange(o: SendOptions & { auth?: string }): Promise<Response> {
    let url = o.url;
    let method = o.method;
    let body = o.body;
    const firstOrigin = new URL(url).origin;
    for (let hop = 0; hop < 6; hop++) {
      const headers: Record<string, string> = { 'user-agent': this.opts.userAgent, ...o.headers };
      // the registry's credentials go to the registry only, never to blob storage on another host
      if (o.auth && new URL(url).origin === firstOrigin) headers.authorization = o.auth;
      const payload = typeof body === 'function' ? body() : body;
      const r = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers,
        body: payload,
        dispatcher: this.dispatcher,
        signal: o.signal,
      });
      const res: Response = { status: r.statusCode, headers: r.headers, body: r.body, url };
      const loc = header(res, 'location');
      if ([301, 302, 303, 307, 308].includes(res.status) && loc) {
        await discard(res);
        url = new URL(loc, url).toString();
        if (res.status === 303 || ((res.status === 301 || res.status === 302) && method !== 'HEAD')) {
          method = method === 'HEAD' ? 'HEAD' : 'GET';
          body = undefined;
        }
        continue;
      }
      return res;
    }
    throw new SealiftError('REGISTRY_ERROR', `${o.op}: too many redirects from ${redact(o.url)}`);
  }

  private getCredential(): Promise<Credential | undefined> {
    this.credential ??= this.opts.credentials(this.credHost);
    return this.credential;
  }

  private async authHeader(scopes: string[]): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.basic;
    if (this.challenge.scheme !== 'bearer') return undefined;
    const key = [...scopes].sort().join(' ');
    let p = this.tokens.get(key);
    if (!p) {
      p = this.fetchToken(this.challenge, scopes);
      this.tokens.set(key, p);
      p.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${await p}`;
  }

  private async fetchToken(ch: Challenge, scopes: string[]): Promise<string> {
    const realm = ch.params.realm;
    if (!realm)
      throw new SealiftError('REGISTRY_ERROR', `registry ${this.name} sent a Bearer challenge without a realm`);
    const cred = await this.getCredential();
    const u = new URL(realm, this.origin);
    let res: Response;
    if (cred?.identityToken) {
      const form = new URLSearchParams({
        grant_type: 'refresh_token',
        refresh_token: cred.identityToken,
        client_id: 'sealift',
      });
      if (ch.params.service) form.set('service', ch.params.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      res = await this.send({
        method: 'POST',
        url: u.toString(),
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: Buffer.from(form.toString()),
        op: `token for ${this.name}`,
      });
    } else {
      if (ch.params.service) u.searchParams.set('service', ch.params.service);
      for (const s of scopes) u.searchParams.append('scope', s);
      res = await this.send({
        method: 'GET',
        url: u.toString(),
        ...(cred ? { auth: basicHeader(cred) } : {}),
        op: `token for ${this.name}`,
      });
    }
    if (res.status === 401 || res.status === 403) {
      await discard(res);
      throw this.authError(cred, `its token server ${redact(u.toString())} answered ${res.status}`);
    }
    if (res.status !== 200) throw await responseError(res, 'GET', this.name, `token for ${this.name}`);
    const j = JSON.parse((await readLimited(res.body, ERROR_BODY_LIMIT)).toString('utf8')) as {
      token?: string;
      access_token?: string;
    };
    const token = j.token ?? j.access_token;
    if (!token) throw new SealiftError('REGISTRY_ERROR', `the token server of ${this.name} answered without a token`);
    return token;
  }

  private authError(cred: Credential | undefined, why: string): SealiftError {
    return new SealiftError(
      'AUTH_FAILED',
      cred
        ? `registry ${this.name} refused the credentials of user "${cred.username ?? '<token>'}" from ${cred.source}: ${why}`
        : `registry ${this.name} requires credentials and none were found: ${why}`,
      {
        details: { registry: this.name },
        hint: `Log in with "docker login ${this.name}" (or set REGISTRY_AUTH_FILE), and check the user may access this repository.`,
      },
    );
  }

  /** A request that negotiates auth: on a 401 it reads the challenge, gets a token or Basic header, and repeats once. */
  async request(o: SendOptions & { scopes: string[] }): Promise<Response> {
    let auth = await this.authHeader(o.scopes);
    for (let round = 0; ; round++) {
      const res = await this.send({ ...o, ...(auth ? { auth } : {}) });
      if (res.status !== 401) {
        if (res.status === 403 && auth) {
          await discard(res);
          throw this.authError(await this.getCredential(), `403 denied to ${o.method} ${redact(res.url)}`);
        }
        return res;
      }
      await discard(res);
      const challenge = parseChallenge(header(res, 'www-authenticate') ?? '');
      const cred = await this.getCredential();
      if (round > 0 || !challenge || (challenge.scheme !== 'basic' && challenge.scheme !== 'bearer')) {
        throw this.authError(cred, `401 to ${o.method} ${redact(res.url)}`);
      }
      if (challenge.scheme === 'basic' && !cred) throw this.authError(undefined, 'it asks for Basic auth');
      this.challenge = challenge;
      if (challenge.scheme === 'basic' && cred) this.basic = basicHeader(cred);
      this.tokens.clear();
      auth = await this.authHeader(o.scopes);
      if (typeof o.body === 'object' && o.body instanceof Readable) {
        // a token expired during a long transfer: the stream is spent, so the caller retries the
        // whole upload (pushBlob reopens its source) with the fresh token now cached
        throw new SealiftError(
          'NETWORK_ERROR',
          `${o.op}: registry ${this.name} asked for auth again during a streamed upload`,
          { details: { registry: this.name, temporary: true } },
        );
      }
    }
  }
}

function pullScope(repo: string): string {
  return `repository:${repo}:pull`;
}
function pushScope(repo: string): string {
  return `repository:${repo}:pull,push`;
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

  constructor(host: string, opts: RegistryOptions = {}) {
    this.host = host;
    const hosts = opts.hosts ?? {};
    const cfg = hosts[host] ?? {};
    this.onEvent = opts.onEvent ?? noEvents;
    const shared = {
      onEvent: this.onEvent,
      userAgent: opts.userAgent ?? 'sealift/0.1',
      retry: { ...DEFAULT_RETRY, ...opts.retry },
      credentials: opts.credentials ?? dockerCredentials(),
    };
    this.origin = new Endpoint(host, cfg, shared);
    const mirrors = (cfg.mirrors ?? []).map((m) => new Endpoint(m, hosts[m.split('/')[0] ?? m] ?? {}, shared));
    this.readers = mirrors.length ? (cfg.mirrorFallback ? [...mirrors, this.origin] : mirrors) : [this.origin];
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
      if (res.status !== 200) throw await responseError(res, 'GET', e.name, `ping ${e.name}`);
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
      if (res.status !== 200) throw await responseError(res, 'HEAD', e.name, `${this.host}/${repo}:${selector}`);
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

  /** GET a manifest or index byte for byte; a digest selector is verified against the bytes. */
  async fetchManifest(repo: string, selector: string, signal?: AbortSignal): Promise<RawManifest> {
    return this.read(async (e) => {
      const where = `${this.host}/${repo}${isDigest(selector) ? '@' : ':'}${selector}`;
      const res = await e.request({
        method: 'GET',
        url: e.path(repo, `manifests/${selector}`),
        headers: { accept: MANIFEST_MEDIA_TYPES.join(', ') },
        op: `manifest ${where}`,
        scopes: [pullScope(repo)],
        ...(signal ? { signal } : {}),
      });
      if (res.status !== 200) throw await responseError(res, 'GET', e.name, where);
      const bytes = await readLimited(res.body, MAX_MANIFEST_BYTES);
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
    });
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
      if (res.status !== 200) throw await responseError(res, 'GET', e.name, where);
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
      throw await responseError(res, 'GET', e.name, where);
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
    throw await responseError(res, 'HEAD', e.name, `${this.host}/${repo}@${digest}`);
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
    throw await responseError(res, 'POST', e.name, `mount ${digest} into ${this.host}/${repo}`);
  }

  /**
   * Uploads a blob: POST to open an upload, then one PUT of the stream with the digest, which
   * commits it (the spec's monolithic upload: the size is known, so no PATCH round trip). The
   * caller decides whether the blob is needed (the copy walk HEADs it first: blobExists).
   * `body` may be a function that opens the stream again: then failures are retried from the start.
   */
  async pushBlob(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    body: Readable | (() => Promise<Readable>),
    signal?: AbortSignal,
  ): Promise<'written'> {
    const reopen = typeof body === 'function' ? body : undefined;
    const attempts = reopen ? 4 : 1;
    for (let attempt = 1; ; attempt++) {
      const stream = reopen ? await reopen() : (body as Readable);
      try {
        await this.uploadOnce(repo, desc, stream, signal);
        return 'written';
      } catch (e) {
        stream.destroy();
        if (attempt >= attempts || !isTemporaryNetworkError(e)) throw e;
        this.onEvent({
          type: 'retry',
          op: `push ${this.host}/${repo}@${desc.digest}`,
          attempt,
          delayMs: 500 * attempt,
          reason: (e as Error).message,
        });
        await sleep(500 * attempt, signal);
      }
    }
  }

  private async uploadOnce(
    repo: string,
    desc: Pick<Descriptor, 'digest' | 'size'>,
    stream: Readable,
    signal?: AbortSignal,
  ): Promise<void> {
    const e = this.origin;
    const where = `${this.host}/${repo}@${desc.digest}`;
    const sig = signal ? { signal } : {};
    const start = await e.request({
      method: 'POST',
      url: e.path(repo, 'blobs/uploads/'),
      headers: { 'content-length': '0' },
      op: `start upload ${where}`,
      scopes: [pushScope(repo)],
      ...sig,
    });
    if (start.status !== 202) throw await responseError(start, 'POST', e.name, `start upload ${where}`);
    await discard(start);
    const loc = header(start, 'location');
    if (!loc)
      throw new SealiftError(
        'REGISTRY_ERROR',
        `registry ${this.host} opened an upload for ${where} without a Location`,
      );
    const url = new URL(loc, e.origin);
    url.searchParams.set('digest', desc.digest);
    const put = await e.request({
      method: 'PUT',
      url: url.toString(),
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(desc.size) },
      body: stream,
      retry: false,
      op: `upload ${where}`,
      scopes: [pushScope(repo)],
      ...sig,
    });
    if (put.status !== 201 && put.status !== 204) throw await responseError(put, 'PUT', e.name, `upload ${where}`);
    await discard(put);
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
      if (res.status !== 200) throw await responseError(res, 'HEAD', e.name, `${this.host}/${repo}:${selector}`);
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
      throw await responseError(res, 'PUT', e.name, `push manifest ${this.host}/${repo}:${selector}`);
    await discard(res);
    const served = header(res, 'docker-content-digest');
    if (served && served !== raw.digest) {
      throw new SealiftError(
        'DIGEST_MISMATCH',
        `${this.host}/${repo}:${selector}: the registry stored the manifest as ${served}, expected ${raw.digest}`,
      );
    }
    return raw.digest;
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
