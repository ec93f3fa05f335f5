// Plain HTTP(S) downloads (release files beside the charts): the OCI stack's pooled undici agent
// and retry policy (network errors, 408/429/5xx with Retry-After, bodies cut short), redirects
// followed. A file is streamed through sha256 into a temp name beside its target and renamed
// into place only when complete and, if a digest was given, matching: nothing half-written.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { interceptors, request, type Dispatcher } from 'undici';
import { SealiftError, errorMessage } from '../errors.ts';
import { noEvents, type RunOptions } from '../events.ts';
import { tempName } from '../fs-atomic.ts';
import {
  DEFAULT_RETRY,
  agentFor,
  backoffMs,
  isTemporaryNetworkError,
  redact,
  retryAfterMs,
  sleep,
  statusIsTemporary,
  type RegistryHostConfig,
  type RetryPolicy,
} from './registry.ts';

export interface DownloadOptions extends RunOptions {
  /** hex sha256 the content must have; a mismatch is DIGEST_MISMATCH and nothing is kept */
  expectedSha256?: string;
  retry?: Partial<RetryPolicy>;
  /** TLS settings for the server (a private CA) */
  tls?: Pick<RegistryHostConfig, 'caFile' | 'insecureSkipVerify'>;
  /** what to do when the download fails for good (the caller knows where the URL came from) */
  hint?: string;
}

export interface FetchedFile {
  path: string;
  /** hex sha256 of the bytes written */
  sha256: string;
  size: number;
}

export interface FetchedText {
  text: string;
  sha256: string;
  size: number;
}

const MAX_REDIRECTIONS = 5;
const DEFAULT_TEXT_LIMIT = 64 * 1024 * 1024;

/** Counts and hashes what passes; refuses more than `limit` bytes, and at the end other bytes than `expectedSha256`. */
class Digester extends Transform {
  private readonly hash = createHash('sha256');
  size = 0;
  /** hex sha256, once the stream has ended */
  sha256 = '';
  private readonly where: string;
  private readonly opts: { limit?: number; expectedSha256?: string };

  constructor(where: string, opts: { limit?: number; expectedSha256?: string }) {
    super();
    this.where = where;
    this.opts = opts;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.size += chunk.length;
    if (this.opts.limit !== undefined && this.size > this.opts.limit) {
      cb(new SealiftError('NETWORK_ERROR', `${this.where} is larger than ${this.opts.limit} bytes`));
      return;
    }
    this.hash.update(chunk);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    this.sha256 = this.hash.digest('hex');
    const expected = this.opts.expectedSha256?.toLowerCase();
    if (expected && this.sha256 !== expected) {
      cb(
        new SealiftError(
          'DIGEST_MISMATCH',
          `${this.where}: sha256 mismatch: expected ${expected}, got ${this.sha256} (${this.size} bytes)`,
          {
            details: { expected, got: this.sha256, size: this.size },
            hint: 'The server sent other bytes than the pinned ones; check the pin, or whether the file was replaced.',
          },
        ),
      );
      return;
    }
    cb();
  }
}

/** An answer other than 200: `temporary` ones are retried, honouring Retry-After. */
class StatusError extends SealiftError {
  readonly retryAfterMs: number | undefined;

  constructor(url: string, status: number, retryAfter: number | undefined, hint: string | undefined) {
    super(
      status === 404 || status === 410 ? 'NOT_FOUND' : 'NETWORK_ERROR',
      `download of ${redact(url)} answered HTTP ${status}`,
      {
        details: { url: redact(url), status, temporary: statusIsTemporary(status) },
        ...(hint ? { hint } : {}),
      },
    );
    this.retryAfterMs = retryAfter;
  }
}

function isRetryable(e: unknown): boolean {
  if (e instanceof StatusError) return e.details?.temporary === true;
  if (e instanceof SealiftError) return false; // a digest mismatch or an oversized body will not heal
  return isTemporaryNetworkError(e);
}

const redirecting = new WeakMap<Dispatcher, Dispatcher>();
function dispatcherFor(tls: DownloadOptions['tls']): Dispatcher {
  const agent = agentFor(tls ?? {});
  let d = redirecting.get(agent);
  if (!d) {
    d = agent.compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTIONS }));
    redirecting.set(agent, d);
  }
  return d;
}

/** GET `url` until `consume` has taken the body, with the registry client's retry policy. */
async function download<T>(
  url: string,
  opts: DownloadOptions,
  consume: (body: Readable, digester: Digester) => Promise<T>,
  limit?: number,
): Promise<T> {
  const policy = { ...DEFAULT_RETRY, ...opts.retry };
  const onEvent = opts.onEvent ?? noEvents;
  const where = `download of ${redact(url)}`;
  for (let attempt = 1; ; attempt++) {
    try {
      const res = await request(url, {
        method: 'GET',
        headers: { 'user-agent': 'sealift/0.1' },
        dispatcher: dispatcherFor(opts.tls),
        ...(opts.signal ? { signal: opts.signal } : {}),
      });
      if (res.statusCode !== 200) {
        const wait = retryAfterMs({ status: res.statusCode, headers: res.headers, body: res.body, url });
        await res.body.dump({ limit: 256 * 1024 }).catch(() => undefined);
        throw new StatusError(url, res.statusCode, wait, opts.hint);
      }
      const digester = new Digester(where, {
        ...(limit !== undefined ? { limit } : {}),
        ...(opts.expectedSha256 ? { expectedSha256: opts.expectedSha256 } : {}),
      });
      return await consume(res.body, digester);
    } catch (e) {
      if (opts.signal?.aborted) throw e;
      if (!isRetryable(e) || attempt >= policy.attempts) {
        if (e instanceof SealiftError) throw e;
        throw new SealiftError(
          'NETWORK_ERROR',
          `cannot download ${redact(url)} (${attempt} attempt(s)): ${errorMessage((e as Error).cause ?? e)}`,
          { cause: e, details: { url: redact(url), temporary: isTemporaryNetworkError(e) }, ...hintOf(opts) },
        );
      }
      const delayMs = Math.round((e instanceof StatusError ? e.retryAfterMs : undefined) ?? backoffMs(policy, attempt));
      onEvent({ type: 'retry', op: where, attempt, delayMs, reason: errorMessage(e) });
      await sleep(delayMs, opts.signal);
    }
  }
}

function hintOf(opts: DownloadOptions): { hint?: string } {
  return opts.hint ? { hint: opts.hint } : {};
}

/**
 * Downloads `url` to `dest`: streamed through sha256 into a temp file in dest's directory,
 * fsynced and renamed over `dest` when complete (and matching `expectedSha256`, if given).
 */
export async function fetchFile(url: string, dest: string, opts: DownloadOptions = {}): Promise<FetchedFile> {
  await mkdir(dirname(dest), { recursive: true });
  return download(url, opts, async (body, digester) => {
    const tmp = tempName(dest);
    try {
      await pipeline(body, digester, createWriteStream(tmp, { flush: true }));
      await rename(tmp, dest);
      return { path: dest, sha256: digester.sha256, size: digester.size };
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
  });
}

/** Downloads a small text file (at most `maxBytes`, default 64 MiB) into memory. */
export async function fetchText(url: string, opts: DownloadOptions & { maxBytes?: number } = {}): Promise<FetchedText> {
  return download(
    url,
    opts,
    async (body, digester) => {
      const chunks: Buffer[] = [];
      await pipeline(body, digester, async (source: AsyncIterable<Buffer>) => {
        for await (const c of source) chunks.push(c);
      });
      const bytes = Buffer.concat(chunks);
      return { text: bytes.toString('utf8'), sha256: digester.sha256, size: bytes.length };
    },
    opts.maxBytes ?? DEFAULT_TEXT_LIMIT,
  );
}
