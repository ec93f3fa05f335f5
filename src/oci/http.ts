// Plain HTTP(S) downloads (release files beside the charts) on the OCI stack's transport: its
// pooled agents, redirects and its one retry policy (network faults, 408/429/5xx with
// Retry-After, and bodies cut short, all under one budget per download). A file is streamed
// through sha256 into a temp name beside its target and renamed into place only when complete
// and, if a digest was given, matching: nothing half-written.
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { SealiftError } from '../errors.ts';
import type { RunOptions } from '../events.ts';
import { tempName } from '../fs-atomic.ts';
import { redactUrl } from '../redact.ts';
import { networkError, retrying, send, statusError, type RetryPolicy, type TlsConfig } from './transport.ts';

export interface DownloadOptions extends RunOptions {
  /** hex sha256 the content must have; a mismatch is DIGEST_MISMATCH and nothing is kept */
  expectedSha256?: string;
  retry?: Partial<RetryPolicy>;
  /** TLS settings for the server (a private CA) */
  tls?: TlsConfig;
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
      cb(
        new SealiftError('NETWORK_ERROR', `${this.where} is larger than ${this.opts.limit} bytes`, {
          details: { temporary: false },
        }),
      );
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

/** GET `url` until `consume` has taken the body: the request and the body are one retried step. */
async function download<T>(
  url: string,
  opts: DownloadOptions,
  consume: (body: Readable, digester: Digester) => Promise<T>,
  limit?: number,
): Promise<T> {
  const op = `download of ${redactUrl(url)}`;
  const run = { ...(opts.retry ? { policy: opts.retry } : {}), ...(opts.onEvent ? { onEvent: opts.onEvent } : {}) };
  const signal = opts.signal ? { signal: opts.signal } : {};
  try {
    return await retrying(op, { ...run, ...signal }, async () => {
      const res = await send({ method: 'GET', url, op, ...(opts.tls ? { tls: opts.tls } : {}), ...signal });
      if (res.status !== 200) throw await statusError(res, { op, method: 'GET' });
      const digester = new Digester(op, {
        ...(limit !== undefined ? { limit } : {}),
        ...(opts.expectedSha256 ? { expectedSha256: opts.expectedSha256 } : {}),
      });
      try {
        return await consume(res.body, digester);
      } catch (e) {
        throw networkError(e, { op, method: 'GET', url });
      }
    });
  } catch (e) {
    if (!(e instanceof SealiftError) || !opts.hint || opts.signal?.aborted) throw e;
    // the caller knows where the URL came from: its hint replaces the generic one
    throw new SealiftError(e.code, e.message, {
      hint: opts.hint,
      cause: e.cause,
      ...(e.details ? { details: e.details } : {}),
    });
  }
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
