// Blob uploads, per the distribution spec ("Pushing blobs"): POST opens an upload session; a
// blob below `chunkedAbove` then goes up in one PUT with its digest (the monolithic upload), a
// larger one in PATCH chunks with Content-Range, committed by an empty PUT with the digest.
// After a failure a chunked upload asks the registry where its session stands (GET on the upload
// URL: 204 with `Range: 0-<last byte>`) and continues from there; a session the registry no
// longer knows (distribution 2.8 drops one whose last PATCH was cut mid-body: the bytes it holds
// no longer match its state token) is started again from byte 0. A failed or abandoned session
// is cancelled (DELETE), so no partial upload is left behind in the registry.
import { Readable } from 'node:stream';
import { SealiftError, isSealiftError } from '../errors.ts';
import type { EventSink } from '../events.ts';
import { discard, header, registryError, type HttpResponse } from './transport.ts';
import type { RegistryAuth } from './auth.ts';
import type { Descriptor } from './types.ts';

export interface UploadSettings {
  /** blobs larger than this go up in chunks (default 64 MiB) */
  chunkedAbove: number;
  /** bytes per PATCH (default 32 MiB): what a failure mid-chunk costs at most when the registry keeps the session */
  chunkBytes: number;
}

export const DEFAULT_UPLOAD: UploadSettings = { chunkedAbove: 64 * 1024 * 1024, chunkBytes: 32 * 1024 * 1024 };

/** How long a DELETE of an abandoned session may take (it runs after the run was interrupted). */
const CANCEL_TIMEOUT_MS = 5000;

/**
 * After an abort, how long a request body in flight may still take to finish. A body cut
 * mid-way leaves distribution 2.8 holding bytes its state token does not cover: the session
 * can then neither be resumed nor cancelled. Finished, it can be cancelled (or is committed).
 */
const BODY_GRACE_MS = 15_000;

/** A signal that follows `outer` only after BODY_GRACE_MS; `release` when the body is sent. */
function graceful(outer: AbortSignal | undefined): { signal?: AbortSignal; release(): void } {
  if (!outer) return { release: () => undefined };
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const onAbort = () => (timer = setTimeout(() => ac.abort(outer.reason), BODY_GRACE_MS));
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return {
    signal: ac.signal,
    release() {
      clearTimeout(timer);
      outer.removeEventListener('abort', onAbort);
    },
  };
}

export interface UploadEndpoint {
  readonly name: string;
  readonly origin: string;
  path(repo: string, rest: string): string;
  request: RegistryAuth['request'];
}

export interface BlobUploadOptions {
  endpoint: UploadEndpoint;
  repo: string;
  scopes: string[];
  desc: Pick<Descriptor, 'digest' | 'size'>;
  /** opens the source from its first byte (again, for a retry) */
  open: () => Promise<Readable>;
  /** `host/repo@digest`, for messages */
  where: string;
  settings?: Partial<UploadSettings>;
  onEvent: EventSink;
  signal?: AbortSignal;
}

/** Reads a stream in pieces of a given size, across the stream's own chunk boundaries. */
class ChunkReader {
  private readonly it: AsyncIterator<Buffer>;
  private rest: Buffer | undefined;
  /** the source's own failure (a digest mismatch), kept: the request that read it reports something else */
  failure: unknown;

  constructor(stream: Readable) {
    this.it = stream[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  }

  private async next(max: number): Promise<Buffer | undefined> {
    if (!this.rest?.length) {
      let r: IteratorResult<Buffer>;
      try {
        r = await this.it.next();
      } catch (e) {
        this.failure = e;
        throw e;
      }
      if (r.done) return undefined;
      this.rest = r.value;
    }
    const piece = this.rest.subarray(0, max);
    this.rest = this.rest.subarray(piece.length);
    return piece;
  }

  /** exactly `n` bytes, as they arrive */
  async *take(n: number, where: string): AsyncGenerator<Buffer> {
    for (let left = n; left > 0;) {
      const piece = await this.next(left);
      if (!piece) throw new SealiftError('BUNDLE_INVALID', `${where}: the source ended ${left} bytes early`);
      left -= piece.length;
      yield piece;
    }
  }

  async skip(n: number, where: string): Promise<void> {
    for await (const piece of this.take(n, where)) void piece;
  }

  /** the end of the source, which is where a verifying source checks the digest */
  async end(where: string): Promise<void> {
    if ((await this.next(1)) !== undefined)
      throw new SealiftError('BUNDLE_INVALID', `${where}: the source holds more bytes than the descriptor's size`);
  }
}

/** The last byte a registry says it holds (`Range: 0-<n>`); "0-0" is read as nothing. */
function rangeEnd(res: HttpResponse): number | undefined {
  const m = /^(?:bytes=)?0-(\d+)$/.exec(header(res, 'range') ?? '');
  return m ? Number(m[1]) : undefined;
}

/** One blob's upload across the tries of the retry budget: the session and its offset carry over. */
export class BlobUpload {
  private readonly o: BlobUploadOptions;
  private readonly settings: UploadSettings;
  /** the upload URL the registry gave last (Location), while a session is open */
  private session: string | undefined;
  private offset = 0;

  constructor(o: BlobUploadOptions) {
    this.o = o;
    this.settings = { ...DEFAULT_UPLOAD, ...o.settings };
  }

  get chunked(): boolean {
    return this.o.desc.size > this.settings.chunkedAbove;
  }

  /** One try; call again after a temporary failure, `cancel` after the last. */
  async attempt(): Promise<void> {
    if (this.session) {
      if (this.chunked) await this.locate();
      else await this.cancel(); // a PUT that failed may have left bytes in its session
    }
    if (!this.session) {
      this.session = await this.start();
      this.offset = 0;
    }
    const stream = await this.o.open();
    try {
      if (!this.chunked) await this.put(stream, this.o.desc.size);
      else {
        const reader = new ChunkReader(stream);
        try {
          await this.sendChunks(reader);
        } catch (e) {
          throw isSealiftError(reader.failure) ? reader.failure : e;
        }
        await this.put(undefined, 0);
      }
    } finally {
      stream.destroy();
    }
    this.session = undefined;
  }

  private url(loc: string): string {
    return new URL(loc, this.o.endpoint.origin).toString();
  }

  private async request(
    method: string,
    url: string,
    what: string,
    extra: { headers?: Record<string, string>; body?: Readable } = {},
  ): Promise<HttpResponse> {
    this.o.signal?.throwIfAborted();
    // a body in flight is allowed to finish after an abort; then the session is cancelled
    const grace = extra.body ? graceful(this.o.signal) : undefined;
    const signal = grace ? grace.signal : this.o.signal;
    try {
      return await this.o.endpoint.request({
        method,
        url,
        op: `${what} ${this.o.where}`,
        scopes: this.o.scopes,
        ...extra,
        ...(signal ? { signal } : {}),
      });
    } finally {
      grace?.release();
    }
  }

  private async fail(res: HttpResponse, method: string, what: string): Promise<never> {
    throw await registryError(res, method, this.o.endpoint.name, `${what} ${this.o.where}`);
  }

  private location(res: HttpResponse, what: string): string {
    const loc = header(res, 'location');
    if (!loc)
      throw new SealiftError(
        'REGISTRY_ERROR',
        `registry ${this.o.endpoint.name} answered ${what} for ${this.o.where} without a Location`,
      );
    return this.url(loc);
  }

  private async start(): Promise<string> {
    const res = await this.request('POST', this.o.endpoint.path(this.o.repo, 'blobs/uploads/'), 'start upload', {
      headers: { 'content-length': '0' },
    });
    if (res.status !== 202) await this.fail(res, 'POST', 'start upload');
    await discard(res);
    return this.location(res, 'the upload start');
  }

  /** Where the session stands after a failure: continue at the registry's offset, or start again. */
  private async locate(): Promise<void> {
    const res = await this.request('GET', this.session!, 'upload status');
    await discard(res);
    const end = res.status === 204 ? rangeEnd(res) : undefined;
    if (end === undefined || end === 0) {
      // a session the registry calls unknown may still hold bytes on disk (distribution 2.8
      // keeps the data of a cut PATCH): cancel it all the same
      await this.cancel();
      this.o.onEvent({
        type: 'info',
        message: `upload of ${this.o.where} starts again at byte 0: the registry kept no part of it (${res.status})`,
        fields: { digest: this.o.desc.digest, offset: 0 },
      });
      return;
    }
    this.session = header(res, 'location') ? this.url(header(res, 'location')!) : this.session;
    this.offset = end + 1;
    this.o.onEvent({
      type: 'info',
      message: `resuming the upload of ${this.o.where} at byte ${this.offset} of ${this.o.desc.size}`,
      fields: { digest: this.o.desc.digest, offset: this.offset },
    });
  }

  private async sendChunks(reader: ChunkReader): Promise<void> {
    const { size } = this.o.desc;
    await reader.skip(this.offset, this.o.where);
    while (this.offset < size) {
      const n = Math.min(this.settings.chunkBytes, size - this.offset);
      const last = this.offset + n - 1;
      const res = await this.request('PATCH', this.session!, 'upload chunk', {
        headers: {
          'content-type': 'application/octet-stream',
          'content-length': String(n),
          'content-range': `${this.offset}-${last}`,
        },
        body: Readable.from(reader.take(n, this.o.where)),
      });
      if (res.status !== 202) await this.fail(res, 'PATCH', 'upload chunk');
      await discard(res);
      this.session = this.location(res, 'a chunk');
      const end = rangeEnd(res);
      if (end !== undefined && end !== last)
        throw new SealiftError(
          'NETWORK_ERROR',
          `${this.o.where}: the registry holds bytes 0-${end} after chunk ${this.offset}-${last}`,
          {
            details: { temporary: true },
          },
        );
      this.offset = last + 1;
    }
    await reader.end(this.o.where);
  }

  /** The committing PUT with the digest: the whole blob (monolithic) or nothing (after the chunks). */
  private async put(body: Readable | undefined, length: number): Promise<void> {
    const url = new URL(this.session!);
    url.searchParams.set('digest', this.o.desc.digest);
    const res = await this.request('PUT', url.toString(), body ? 'upload' : 'commit upload', {
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(length) },
      ...(body ? { body } : {}),
    });
    if (res.status !== 201 && res.status !== 204) await this.fail(res, 'PUT', 'upload');
    await discard(res);
  }

  /** Cancels the open session, if any (DELETE; best effort, bounded, even after an abort). */
  async cancel(): Promise<void> {
    const url = this.session;
    this.session = undefined;
    if (!url) return;
    const res = await this.o.endpoint
      .request({
        method: 'DELETE',
        url,
        op: `cancel upload ${this.o.where}`,
        scopes: this.o.scopes,
        signal: AbortSignal.timeout(CANCEL_TIMEOUT_MS),
      })
      .catch(() => undefined);
    if (res) await discard(res);
  }
}
