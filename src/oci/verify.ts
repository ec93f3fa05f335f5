// Verification by construction: a stream that lets through at most `size` bytes of a
// descriptor and, at the end, checks the size and the sha256. A registry that sends a short
// body, a long body or other bytes cannot get them past it.
import { createHash, type Hash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { SealiftError } from '../errors.ts';
import type { Descriptor } from './types.ts';

export class VerifyStream extends Transform {
  private readonly hash: Hash;
  private received: number;
  private readonly desc: Pick<Descriptor, 'digest' | 'size'>;
  private readonly where: string;
  private readonly onBytes: ((n: number) => void) | undefined;

  /** `resume`: the bytes before this stream were already hashed into `hash` (a ranged resume) */
  constructor(
    desc: Pick<Descriptor, 'digest' | 'size'>,
    opts: { where: string; onBytes?: (n: number) => void; resume?: { hash: Hash; received: number } },
  ) {
    super();
    this.hash = opts.resume?.hash ?? createHash('sha256');
    this.received = opts.resume?.received ?? 0;
    this.desc = desc;
    this.where = opts.where;
    this.onBytes = opts.onBytes;
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    this.received += chunk.length;
    if (this.received > this.desc.size) {
      cb(
        new SealiftError(
          'DIGEST_MISMATCH',
          `${this.where}: ${this.desc.digest} is longer than its size ${this.desc.size} (got at least ${this.received} bytes)`,
          {
            details: { digest: this.desc.digest, expectedSize: this.desc.size, gotSize: this.received },
          },
        ),
      );
      return;
    }
    this.hash.update(chunk);
    this.onBytes?.(chunk.length);
    cb(null, chunk);
  }

  override _flush(cb: TransformCallback): void {
    if (this.received < this.desc.size) {
      cb(new ShortBodyError(this.where, this.desc, this.received));
      return;
    }
    const got = `sha256:${this.hash.digest('hex')}`;
    if (got !== this.desc.digest) {
      cb(
        new SealiftError(
          'DIGEST_MISMATCH',
          `${this.where}: digest mismatch: expected ${this.desc.digest}, got ${got} (${this.received} bytes)`,
          {
            details: { expected: this.desc.digest, got },
            hint: 'The source served bytes other than the ones its manifest names; it may be corrupt or tampered with.',
          },
        ),
      );
      return;
    }
    cb();
  }

  /** whether this stream checks exactly this descriptor (same digest and size) */
  verifies(desc: Pick<Descriptor, 'digest' | 'size'>): boolean {
    return this.desc.digest === desc.digest && this.desc.size === desc.size;
  }

  get bytesReceived(): number {
    return this.received;
  }
}

/** A body that ended early: a network fault, worth a retry (unlike a wrong digest). */
export class ShortBodyError extends SealiftError {
  constructor(where: string, desc: Pick<Descriptor, 'digest' | 'size'>, got: number) {
    super('NETWORK_ERROR', `${where}: ${desc.digest} ended after ${got} of ${desc.size} bytes`, {
      details: { digest: desc.digest, expectedSize: desc.size, gotSize: got },
    });
  }
}
