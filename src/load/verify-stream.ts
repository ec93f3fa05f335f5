// Verification by construction: a stream that passes at most `size` bytes and fails at the end
// unless they hash to `digest` (oras-go's VerifyReader). Nothing unverified gets past it.
import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { SealiftError } from '../errors.ts';

export class DigestVerifier extends Transform {
  private readonly hash = createHash('sha256');
  private seen = 0;
  private readonly expectedHex: string;
  private readonly size: number | undefined;
  private readonly what: string;
  private readonly onBytes: ((n: number) => void) | undefined;

  constructor(opts: { digest: string; size?: number; what: string; onBytes?: (n: number) => void }) {
    super({ highWaterMark: 1 << 20 });
    if (!opts.digest.startsWith('sha256:')) {
      throw new SealiftError('DIGEST_MISMATCH', `${opts.what}: unsupported digest algorithm in "${opts.digest}"`);
    }
    this.expectedHex = opts.digest.slice('sha256:'.length);
    this.size = opts.size;
    this.what = opts.what;
    this.onBytes = opts.onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.seen += chunk.length;
    if (this.size !== undefined && this.seen > this.size) {
      cb(new SealiftError('DIGEST_MISMATCH', `${this.what}: more than the expected ${this.size} bytes`, { details: { expectedSize: this.size } }));
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.size !== undefined && this.seen !== this.size) {
      cb(new SealiftError('DIGEST_MISMATCH', `${this.what}: expected ${this.size} bytes, got ${this.seen}`, { details: { expectedSize: this.size, size: this.seen } }));
      return;
    }
    const got = this.hash.digest('hex');
    if (got !== this.expectedHex) {
      cb(
        new SealiftError('DIGEST_MISMATCH', `${this.what}: content hashes to sha256:${got}, expected sha256:${this.expectedHex}`, {
          hint: 'The bytes were altered or damaged; nothing built from them was kept.',
          details: { expected: `sha256:${this.expectedHex}`, got: `sha256:${got}` },
        }),
      );
      return;
    }
    cb();
  }
}

export function sha256Hex(data: Uint8Array | string): string {
  return createHash('sha256').update(data).digest('hex');
}
