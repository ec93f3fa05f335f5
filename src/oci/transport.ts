// The transport under the registry client and the plain downloads (http.ts): one HTTP exchange
// with redirects (the registry's Authorization never follows to another origin), the
// classification of a failure (temporary or not, by error code and status, never by message
// text), and sealift's ONE retry policy.
//
// One budget per request: `retrying` runs its attempts under the budget of the operation it is
// part of (AsyncLocalStorage), so a blob transfer, its HEAD, its upload requests and a token
// fetch on the way share one count of failures instead of multiplying nested loops.
//
// Worst case per budget, DEFAULT_RETRY: 6 tries, so at most 5 waits: 250 + 500 + 1000 + 2000 +
// 4000 ms = 7.75 s of backoff (jitter only shortens it; worstCaseBackoffMs), or a registry's
// Retry-After, capped at 30 s a wait (150 s). Each try is bounded by the connect timeout (10 s),
// the headers timeout (60 s) and, for bodies, 60 s without a byte. A host that does not
// resolve, is unreachable or refuses connections is not retried: one try, it fails in
// milliseconds with the host named. (Six tries: at 10% of connections reset, a blob's upload
// of three requests fails for good about once in 50,000.)
import { AsyncLocalStorage } from 'node:async_hooks';
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Agent, request, type Dispatcher } from './undici-core.ts';
import { SealiftError, errorMessage, isSealiftError, type ErrorCode } from '../errors.ts';
import { noEvents, type EventSink } from '../events.ts';
import { redactUrl } from '../redact.ts';

export interface RetryPolicy {
  /** tries per budget, including the first */
  attempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  /** a registry's Retry-After is honoured up to this */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 6, baseDelayMs: 250, maxDelayMs: 4000, maxRetryAfterMs: 30_000 };
export const CONNECT_TIMEOUT_MS = 10_000;
export const HEADERS_TIMEOUT_MS = 60_000;
export const BODY_TIMEOUT_MS = 60_000;
const ERROR_BODY_LIMIT = 64 * 1024;
const MAX_REDIRECTS = 5;

/** Exponential backoff with jitter: the n-th wait is about baseDelayMs * 2^(n-1), at most maxDelayMs. */
export function backoffMs(policy: RetryPolicy, retry: number): number {
  return Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (retry - 1)) * (0.5 + Math.random() / 2);
}

/** The longest a budget waits in backoff (no Retry-After): the sum of its waits without jitter. */
export function worstCaseBackoffMs(policy: RetryPolicy): number {
  let total = 0;
  for (let n = 1; n < policy.attempts; n++) total += Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
  return total;
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason as Error);
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => (clearTimeout(t), reject(signal.reason as Error)), { once: true });
  });
}

// ---- classification ----------------------------------------------------------------------

/** What kind of network failure: the first three are not worth a retry. */
export type NetworkFault = 'unresolvable' | 'unreachable' | 'refused' | 'tls' | 'timeout' | 'cut';

const FAULT_BY_CODE: Record<string, NetworkFault> = {
  ENOTFOUND: 'unresolvable',
  EAI_AGAIN: 'unresolvable',
  EAI_FAIL: 'unresolvable',
  EAI_NONAME: 'unresolvable',
  EHOSTUNREACH: 'unreachable',
  ENETUNREACH: 'unreachable',
  ECONNREFUSED: 'refused',
  ETIMEDOUT: 'timeout',
  UND_ERR_CONNECT_TIMEOUT: 'timeout',
  UND_ERR_HEADERS_TIMEOUT: 'timeout',
  UND_ERR_BODY_TIMEOUT: 'timeout',
  ECONNRESET: 'cut',
  EPIPE: 'cut',
  ECONNABORTED: 'cut',
  UND_ERR_SOCKET: 'cut',
  UND_ERR_CLOSED: 'cut',
  UND_ERR_RES_CONTENT_LENGTH_MISMATCH: 'cut',
  UND_ERR_REQ_CONTENT_LENGTH_MISMATCH: 'cut',
  ERR_STREAM_PREMATURE_CLOSE: 'cut',
};

const RETRIED: ReadonlySet<NetworkFault> = new Set(['timeout', 'cut']);

/** The fault behind a raw network error (following `cause`), or undefined when it is none. */
export function networkFault(e: unknown): NetworkFault | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur && typeof cur === 'object'; i++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === 'string') {
      if (FAULT_BY_CODE[code]) return FAULT_BY_CODE[code];
      if (/^(ERR_TLS|ERR_SSL|CERT_|DEPTH_ZERO|SELF_SIGNED|UNABLE_TO_VERIFY|EPROTO)/.test(code)) return 'tls';
    }
    cur = (cur as { cause?: unknown }).cause;
  }
  // undici's SocketError and stream errors without a code
  const msg = e instanceof Error ? e.message : '';
  if (/other side closed|socket hang up|^terminated$|premature close/i.test(msg)) return 'cut';
  if (/certificate|wrong version number|SSL routines/i.test(msg)) return 'tls';
  return undefined;
}

/**
 * Whether a failure may heal on a retry. A SealiftError says so itself (details.temporary;
 * a NETWORK_ERROR without it, such as a body cut short, is temporary).
 */
export function isTemporaryNetworkError(e: unknown): boolean {
  if (isSealiftError(e)) return (e.details?.temporary as boolean | undefined) ?? e.code === 'NETWORK_ERROR';
  const fault = networkFault(e);
  return fault !== undefined && RETRIED.has(fault);
}

export function statusIsTemporary(status: number): boolean {
  return status === 408 || status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

/**
 * A network failure as a NETWORK_ERROR that names the host and the kind of fault, with a hint
 * for that kind; `temporary` says whether the retry layer may try again.
 */
export function networkError(e: unknown, o: { op: string; method: string; url: string; host?: string }): SealiftError {
  if (isSealiftError(e)) return e;
  const host = o.host ?? hostOf(o.url);
  const fault = networkFault(e) ?? 'cut';
  const why = errorMessage((e as { cause?: unknown }).cause ?? e);
  const what: Record<NetworkFault, string> = {
    unresolvable: `host ${host} does not resolve (${why})`,
    unreachable: `host ${host} is unreachable (${why})`,
    refused: `${host} refused the connection (${why})`,
    tls: `the TLS handshake with ${host} failed (${why})`,
    timeout: `${host} did not answer in time (${why})`,
    cut: `the connection to ${host} was cut (${why})`,
  };
  const hint: Record<NetworkFault, string> = {
    unresolvable: `Check the name ${host}; on a machine without that network (an air gap), use a bundle or a mirror for it.`,
    unreachable: `Check the network route to ${host}.`,
    refused: `Check that the registry at ${host} is running and listens on that port.`,
    tls: `If ${host} speaks plain HTTP, mark it so (--plain-http ${host}); for a private CA give --ca-file ${host}=PATH.`,
    timeout: `A network fault: check ${host} and the network; a re-run continues where this one stopped.`,
    cut: `A network fault: check ${host} and the network; a re-run continues where this one stopped.`,
  };
  return new SealiftError('NETWORK_ERROR', `${o.op}: ${o.method} ${redactUrl(o.url)}: ${what[fault]}`, {
    cause: e,
    hint: hint[fault],
    details: { host, fault, temporary: RETRIED.has(fault) },
  });
}

// ---- the one retry loop ---------------------------------------------------------------------

/** The failures one operation may still retry; shared by every `retrying` call inside it. */
export class RetryBudget {
  readonly policy: RetryPolicy;
  private readonly onEvent: EventSink;
  private readonly signal: AbortSignal | undefined;
  /** failures retried so far */
  retries = 0;

  constructor(policy: Partial<RetryPolicy> = {}, opts: { onEvent?: EventSink; signal?: AbortSignal } = {}) {
    this.policy = { ...DEFAULT_RETRY, ...policy };
    this.onEvent = opts.onEvent ?? noEvents;
    this.signal = opts.signal;
  }

  get exhausted(): boolean {
    return this.retries + 1 >= this.policy.attempts;
  }

  /** Runs `attempt` until it succeeds, fails for good, or the budget is spent. */
  async run<T>(op: string, attempt: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await attempt();
      } catch (e) {
        if (this.signal?.aborted || !isTemporaryNetworkError(e) || this.exhausted) throw e;
        this.retries++;
        const wait = isSealiftError(e) ? (e.details?.retryAfterMs as number | undefined) : undefined;
        const delayMs = Math.round(
          wait !== undefined ? Math.min(wait, this.policy.maxRetryAfterMs) : backoffMs(this.policy, this.retries),
        );
        this.onEvent({ type: 'retry', op, attempt: this.retries, delayMs, reason: retryReason(e) });
        await sleep(delayMs, this.signal);
      }
    }
  }
}

function retryReason(e: unknown): string {
  if (isSealiftError(e) && typeof e.details?.status === 'number' && e.details.registry)
    return `${e.details.status} from ${String(e.details.registry)}`;
  return errorMessage(e);
}

const budgets = new AsyncLocalStorage<RetryBudget>();

/**
 * Runs `attempt` with retries under the budget of the enclosing operation, or a fresh one made
 * from `policy` when there is none: the only retry loop in sealift.
 */
export function retrying<T>(
  op: string,
  opts: { policy?: Partial<RetryPolicy>; onEvent?: EventSink; signal?: AbortSignal },
  attempt: () => Promise<T>,
): Promise<T> {
  const budget = budgets.getStore() ?? new RetryBudget(opts.policy, opts);
  return budgets.run(budget, () => budget.run(op, attempt));
}

/** Runs `fn` (and every `retrying` inside it) under one budget. */
export function withRetryBudget<T>(budget: RetryBudget, fn: () => Promise<T>): Promise<T> {
  return budgets.run(budget, fn);
}

// ---- HTTP ------------------------------------------------------------------------------------

export interface TlsConfig {
  /** PEM file of CA certificates to trust */
  caFile?: string;
  insecureSkipVerify?: boolean;
}

const agents = new Map<string, Agent>();
export function agentFor(cfg: TlsConfig): Agent {
  const key = `${cfg.caFile ?? ''}|${cfg.insecureSkipVerify ? 1 : 0}`;
  let a = agents.get(key);
  if (!a) {
    a = new Agent({
      connections: 16,
      connectTimeout: CONNECT_TIMEOUT_MS,
      headersTimeout: HEADERS_TIMEOUT_MS,
      bodyTimeout: BODY_TIMEOUT_MS,
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
export async function closeConnections(): Promise<void> {
  const all = [...agents.values()];
  agents.clear();
  await Promise.all(all.map((a) => a.close().catch(() => undefined)));
}

export type Body = Uint8Array | Readable | (() => Readable);

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Dispatcher.ResponseData['body'];
  /** the URL that answered (after redirects) */
  url: string;
}

export interface SendOptions {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Body;
  /** sent to the first origin only, never after a redirect to another host */
  auth?: string;
  /** for messages and retry events */
  op: string;
  /** the name the user knows the server by (a registry host), for messages */
  host?: string;
  signal?: AbortSignal;
  tls?: TlsConfig;
  userAgent?: string;
  retry?: Partial<RetryPolicy>;
  onEvent?: EventSink;
}

export function header(res: Pick<HttpResponse, 'headers'>, name: string): string | undefined {
  const v = res.headers[name.toLowerCase()];
  return Array.isArray(v) ? v[0] : v;
}

export function retryAfterMs(res: Pick<HttpResponse, 'headers'>): number | undefined {
  const v = header(res, 'retry-after');
  if (!v) return undefined;
  const secs = Number(v);
  if (Number.isFinite(secs)) return Math.max(secs * 1000, 0);
  const at = Date.parse(v);
  return Number.isNaN(at) ? undefined : Math.max(at - Date.now(), 0);
}

export async function readLimited(body: Readable, limit: number): Promise<Buffer> {
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

export async function discard(res: Pick<HttpResponse, 'body'>): Promise<void> {
  try {
    await res.body.dump({ limit: 256 * 1024 });
  } catch {
    /* the connection is dropped instead */
  }
}

/** One exchange, redirects followed; raw network errors become NETWORK_ERROR naming the host. */
async function exchange(o: SendOptions): Promise<HttpResponse> {
  let url = o.url;
  let method = o.method;
  let body = o.body;
  const firstOrigin = new URL(url).origin;
  for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
    const headers: Record<string, string> = { 'user-agent': o.userAgent ?? 'sealift/0.1', ...o.headers };
    if (o.auth && new URL(url).origin === firstOrigin) headers.authorization = o.auth;
    const payload = typeof body === 'function' ? body() : body;
    let r: Dispatcher.ResponseData;
    try {
      r = await request(url, {
        method: method as Dispatcher.HttpMethod,
        headers,
        body: payload,
        dispatcher: agentFor(o.tls ?? {}),
        signal: o.signal,
      });
    } catch (e) {
      if (o.signal?.aborted) throw e;
      throw networkError(e, { ...o, url, method });
    }
    const res: HttpResponse = { status: r.statusCode, headers: r.headers, body: r.body, url };
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
  throw new SealiftError('REGISTRY_ERROR', `${o.op}: more than ${MAX_REDIRECTS} redirects from ${redactUrl(o.url)}`);
}

/**
 * One request with the retry policy: network faults and temporary statuses (408, 429, 5xx,
 * with Retry-After) are retried; any other answer is returned. A stream body cannot be sent
 * twice: its failure goes to the enclosing operation, which opens the stream again.
 * `describe` turns a temporary status that is not retried any more into the error thrown.
 */
export function send(
  o: SendOptions,
  describe: (res: HttpResponse) => Promise<SealiftError> = (res) => statusError(res, o),
): Promise<HttpResponse> {
  const once = async () => {
    const res = await exchange(o);
    if (!statusIsTemporary(res.status)) return res;
    throw await describe(res);
  };
  if (o.body instanceof Readable) return once();
  return retrying(
    o.op,
    {
      ...(o.retry ? { policy: o.retry } : {}),
      ...(o.onEvent ? { onEvent: o.onEvent } : {}),
      ...(o.signal ? { signal: o.signal } : {}),
    },
    once,
  );
}

/** Reads an error body (at most 64 KiB) for the registry's own codes, or a line of text. */
export async function readErrorBody(res: HttpResponse): Promise<{ codes: string[]; detail: string }> {
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
  return { codes, detail };
}

/** A plain server's answer other than 2xx: NOT_FOUND for 404/410, else NETWORK_ERROR; `temporary` by status. */
export async function statusError(res: HttpResponse, o: Pick<SendOptions, 'op' | 'method'>): Promise<SealiftError> {
  await discard(res);
  const code: ErrorCode = res.status === 404 || res.status === 410 ? 'NOT_FOUND' : 'NETWORK_ERROR';
  const wait = retryAfterMs(res);
  return new SealiftError(code, `${o.op} answered HTTP ${res.status}`, {
    details: {
      url: redactUrl(res.url),
      status: res.status,
      method: o.method,
      temporary: statusIsTemporary(res.status),
      ...(wait !== undefined ? { retryAfterMs: wait } : {}),
    },
  });
}

/**
 * A registry's answer as an error: status, the registry's own codes (NOT_FOUND for *_UNKNOWN,
 * AUTH_FAILED for 401/403/DENIED), method and a redacted URL; `temporary` by status.
 */
export async function registryError(
  res: HttpResponse,
  method: string,
  registry: string,
  what: string,
): Promise<SealiftError> {
  const { codes, detail } = await readErrorBody(res);
  let code: ErrorCode = 'REGISTRY_ERROR';
  if (res.status === 404 || codes.some((c) => /_UNKNOWN$/.test(c))) code = 'NOT_FOUND';
  else if (res.status === 401 || res.status === 403 || codes.includes('DENIED') || codes.includes('UNAUTHORIZED'))
    code = 'AUTH_FAILED';
  const wait = retryAfterMs(res);
  return new SealiftError(
    code,
    `${what}: registry ${registry} answered ${res.status} to ${method} ${redactUrl(res.url)}${detail ? ` (${detail})` : ''}`,
    {
      details: {
        registry,
        status: res.status,
        method,
        url: redactUrl(res.url),
        registryCodes: codes,
        temporary: statusIsTemporary(res.status),
        ...(wait !== undefined ? { retryAfterMs: wait } : {}),
      },
      hint:
        code === 'NOT_FOUND'
          ? 'Check the reference (repository, tag or digest) exists in that registry.'
          : code === 'AUTH_FAILED'
            ? `Log in with "docker login ${registry}" or check the credentials for it.`
            : statusIsTemporary(res.status)
              ? `${registry} kept failing (${res.status}); a re-run continues where this one stopped.`
              : undefined,
    },
  );
}
