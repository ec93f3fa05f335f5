// The bundle tar on disk while it is written: temp files (one, or one per --split-size part:
// a single offset space) at their final size, into which every file of the layout (tar.ts) is
// written at its own offset, by as many writers at once as there are downloads. Nothing is
// written twice and nothing is held in memory: a writer is a stream that pwrite()s each chunk.
//
// The sha256 of each part (the <name>.tar.sha256 beside the bundle) is computed while the files
// are written, in tar order: whenever the next files in order are done, the bytes up to the
// first one not done are read back (from the page cache) and hashed, so complete() has little
// left to hash. The packer lays the blobs out in the order it fetches them for that reason.
//
// A journal beside the temp files makes a killed run resumable. A file's "done" line is appended
// only after the temp files were fdatasync()ed, so a done file is on disk; a "part" line (the
// first N bytes of a file written so far) is a hint and is not synced: whoever continues a part
// hashes those bytes again as part of the whole file's digest, and starts over when it differs.
// A re-run keeps the records whose path, offset, size and sha256 are the same in its own layout
// (the layout is a function of the contents, so an unchanged bundle keeps all of them).
//
//   .<name>.tar.tmp | .<name>.tar.part-NNN.tmp     the archive, under temp names until complete
//   .<name>.tar.journal                           sealift-tar-journal 1 split=<bytes|0>
//                                                 done <offset> <size> <sha256> <path>
//                                                 part <offset> <size> <sha256> <bytes> <path>
import { createHash, type Hash } from 'node:crypto';
import { open, readdir, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { SealiftError } from '../errors.ts';
import { fsyncDir, writeFileAtomic } from '../fs-atomic.ts';
import { TAR_BLOCK, type PlacedTarFile, type TarLayout } from './tar.ts';

const JOURNAL_VERSION = 'sealift-tar-journal 1';
/** a "part" line per this many bytes of one file: what a killed run keeps of a large layer */
const PART_RECORD_STEP = 8 * 1024 * 1024;

export interface PlannedFile extends PlacedTarFile {
  /** hex sha256 of the data: what the journal keys on */
  sha256: string;
}

interface Part {
  tmp: string;
  final: string;
  start: number;
  size: number;
  fh?: FileHandle;
}

export interface WrittenPart {
  path: string;
  size: number;
  sha256: string;
}

function recordKey(f: Pick<PlannedFile, 'dataOffset' | 'size' | 'sha256' | 'path'>): string {
  return `${f.dataOffset} ${f.size} ${f.sha256} ${f.path}`;
}

export class PlannedTar {
  readonly output: string;
  readonly size: number;
  private readonly files: Map<string, PlannedFile>;
  private readonly layout: TarLayout;
  private readonly parts: Part[];
  private readonly journalPath: string;
  private readonly splitSize: number;
  private journal?: FileHandle;
  private readonly done = new Set<string>();
  /** path -> contiguous bytes from the start of the file known written (this run: exact; earlier: a hint) */
  private readonly progress = new Map<string, number>();
  private batch: { lines: string[]; sync: boolean; promise: Promise<void> } | undefined;
  private chain: Promise<void> = Promise.resolve();
  /** the first done record that failed to be written (markDone does not wait for them; `chain` runs them) */
  private journalFailure?: { error: unknown };
  /**
   * the parts' sha256 in tar order, as far as the files written allow (see advanceHash); unset
   * when not wanted (a compressed bundle hashes its compressed files instead)
   */
  private readonly running?: {
    /** bytes of the archive hashed */
    at: number;
    /** index in layout.files of the first file whose data is not yet known complete */
    next: number;
    part: number;
    hash: Hash;
    digests: string[];
    buf: Buffer;
  };
  /** the hashing passes, one after another (a failed one fails complete()) */
  private hashed: Promise<void> = Promise.resolve();

  private constructor(
    output: string,
    layout: TarLayout,
    files: PlannedFile[],
    splitSize: number | undefined,
    hashing: boolean,
  ) {
    this.output = output;
    if (hashing)
      this.running = {
        at: 0,
        next: 0,
        part: 0,
        hash: createHash('sha256'),
        digests: [],
        buf: Buffer.allocUnsafe(1 << 20),
      };
    this.layout = layout;
    this.size = layout.size;
    this.files = new Map(files.map((f) => [f.path, f]));
    this.splitSize = splitSize ?? 0;
    const dir = dirname(output);
    this.journalPath = join(dir, `.${basename(output)}.journal`);
    this.parts = [];
    const count = splitSize ? Math.max(1, Math.ceil(layout.size / splitSize)) : 1;
    for (let i = 0; i < count; i++) {
      const final = splitSize ? `${output}.part-${String(i).padStart(3, '0')}` : output;
      const start = splitSize ? i * splitSize : 0;
      const end = splitSize ? Math.min(layout.size, start + splitSize) : layout.size;
      this.parts.push({ tmp: join(dir, `.${basename(final)}.tmp`), final, start, size: end - start });
    }
  }

  /**
   * Reads what an earlier run left (nothing is created yet: the caller may still refuse, e.g. for
   * want of disk space); `open()` then creates or reuses the temp files.
   */
  static async prepare(
    output: string,
    layout: TarLayout,
    sha256: ReadonlyMap<string, string>,
    splitSize?: number,
    opts: { hash?: boolean } = {},
  ): Promise<PlannedTar> {
    const files = layout.files.map((f) => {
      const hex = sha256.get(f.path);
      if (!hex) throw new SealiftError('INTERNAL', `tar layout: no sha256 for ${f.path}`);
      return { ...f, sha256: hex };
    });
    const tar = new PlannedTar(output, layout, files, splitSize, opts.hash !== false);
    await tar.readJournal();
    return tar;
  }

  private async readJournal(): Promise<void> {
    const text = await readFile(this.journalPath, 'utf8').catch(() => undefined);
    if (text === undefined) return;
    const [head, ...lines] = text.split('\n');
    if (head !== `${JOURNAL_VERSION} split=${this.splitSize}`) return;
    // the earlier run's temp files must all still be there for its records to mean anything
    const present = new Set(await readdir(dirname(this.output)));
    if (!this.parts.every((p) => present.has(basename(p.tmp)))) return;
    const byKey = new Map([...this.files.values()].map((f) => [recordKey(f), f]));
    for (const line of lines) {
      const m = /^(done|part) (\d+) (\d+) ([a-f0-9]{64}) (?:(\d+) )?(.+)$/.exec(line);
      if (!m) continue;
      const [, kind, off, size, hex, bytes, path] = m;
      const f = byKey.get(`${off} ${size} ${hex} ${path}`);
      if (!f) continue;
      if (kind === 'done') this.done.add(f.path);
      else if (bytes !== undefined) this.progress.set(f.path, Math.min(Number(bytes), f.size));
    }
  }

  /** Bytes an earlier run left that this one keeps (done files). */
  get keptBytes(): number {
    let n = 0;
    for (const p of this.done) n += this.files.get(p)?.size ?? 0;
    return n;
  }

  /** Creates (or reuses) the temp files at their final sizes, writes every header, starts the journal. */
  async open(): Promise<void> {
    const dir = dirname(this.output);
    // temp parts of an earlier layout with more parts than this one
    const ours = new Set(this.parts.map((p) => basename(p.tmp)));
    const stem = `.${basename(this.output)}.part-`;
    for (const n of await readdir(dir))
      if (n.startsWith(stem) && n.endsWith('.tmp') && !ours.has(n)) await rm(join(dir, n), { force: true });
    for (const p of this.parts) {
      // kept without truncating (its done files are in it); every other byte is written again
      p.fh = await open(p.tmp, 'r+').catch(() => open(p.tmp, 'w+'));
      await p.fh.truncate(p.size);
    }
    const kept = [...this.files.values()].flatMap((f) =>
      this.done.has(f.path)
        ? [`done ${recordKey(f)}\n`]
        : this.progress.has(f.path)
          ? [`part ${f.dataOffset} ${f.size} ${f.sha256} ${this.progress.get(f.path)} ${f.path}\n`]
          : [],
    );
    await writeFileAtomic(this.journalPath, `${JOURNAL_VERSION} split=${this.splitSize}\n${kept.join('')}`);
    this.journal = await open(this.journalPath, 'a');
    for (const f of this.layout.files) {
      await this.pwrite(f.header, f.headerOffset);
      // the padding after the data: zeros, also over what a killed run with another layout left
      const pad = (TAR_BLOCK - (f.size % TAR_BLOCK)) % TAR_BLOCK;
      if (pad) await this.pwrite(Buffer.alloc(pad), f.dataOffset + f.size);
    }
    await this.pwrite(Buffer.alloc(2 * TAR_BLOCK), this.layout.size - 2 * TAR_BLOCK);
    this.advanceHash();
  }

  file(path: string): PlannedFile {
    const f = this.files.get(path);
    if (!f) throw new SealiftError('INTERNAL', `${path} is not in the bundle's tar layout`);
    return f;
  }

  has(path: string): boolean {
    return this.files.has(path);
  }

  isDone(path: string): boolean {
    return this.done.has(path);
  }

  /** Bytes from the start of the file that a writer may continue after (0: start over). */
  resumable(path: string): number {
    return this.progress.get(path) ?? 0;
  }

  /** Forgets a partial file (its bytes did not verify): the next writer starts at 0. */
  forget(path: string): void {
    this.progress.delete(path);
  }

  private async pwrite(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    while (done < buf.length) {
      const at = position + done;
      const part = this.parts.find((p) => at >= p.start && at < p.start + p.size);
      if (!part?.fh) throw new SealiftError('INTERNAL', `tar write at ${at} is outside the archive (${this.size})`);
      const n = Math.min(buf.length - done, part.start + part.size - at);
      const { bytesWritten } = await part.fh.write(buf, done, n, at - part.start);
      done += bytesWritten;
    }
  }

  /** Several buffers at one position: one pwritev when they fall in one part. */
  private async pwritev(bufs: Buffer[], position: number): Promise<void> {
    const n = bufs.reduce((a, b) => a + b.length, 0);
    const part = this.parts.find((p) => position >= p.start && position + n <= p.start + p.size);
    if (!part?.fh || bufs.length === 1) {
      for (const b of bufs) {
        await this.pwrite(b, position);
        position += b.length;
      }
      return;
    }
    let at = position - part.start;
    let rest = bufs;
    while (rest.length) {
      const { bytesWritten } = await part.fh.writev(rest, at);
      at += bytesWritten;
      // a short write: continue after what was written
      let skip = bytesWritten;
      const next: Buffer[] = [];
      for (const b of rest) {
        if (skip >= b.length) skip -= b.length;
        else {
          next.push(skip ? b.subarray(skip) : b);
          skip = 0;
        }
      }
      rest = next;
    }
  }

  /** A stream of the first `length` bytes of a file as written so far (to hash a part again). */
  read(path: string, length: number): Readable {
    const f = this.file(path);
    const parts = this.parts;
    let at = 0;
    return new Readable({
      highWaterMark: 1 << 20,
      read() {
        if (at >= length) {
          this.push(null);
          return;
        }
        const pos = f.dataOffset + at;
        const part = parts.find((p) => pos >= p.start && pos < p.start + p.size)!;
        const n = Math.min(1 << 20, length - at, part.start + part.size - pos);
        const buf = Buffer.allocUnsafe(n);
        part.fh!.read(buf, 0, n, pos - part.start).then(
          ({ bytesRead }) => {
            at += bytesRead;
            this.push(bytesRead === 0 ? null : buf.subarray(0, bytesRead));
          },
          (e: Error) => this.destroy(e),
        );
      },
    });
  }

  /** A stream that writes a file's bytes from byte `from` on, at their place in the archive. */
  writer(path: string, from = 0): Writable {
    const f = this.file(path);
    let written = from;
    let sinceRecord = 0;
    if (from === 0) this.progress.delete(path);
    const wrote = (n: number) => {
      written += n;
      this.progress.set(path, written);
      sinceRecord += n;
      if (sinceRecord >= PART_RECORD_STEP && written < f.size) {
        sinceRecord = 0;
        // a hint for a re-run after a kill, not a promise: never waited for, never synced
        this.journalLine(`part ${f.dataOffset} ${f.size} ${f.sha256} ${written} ${path}\n`, false).catch(
          () => undefined,
        );
      }
    };
    const put = (chunks: Buffer[], cb: (e?: Error | null) => void) => {
      const n = chunks.reduce((a, c) => a + c.length, 0);
      if (written + n > f.size) {
        cb(new SealiftError('INTERNAL', `${path}: more than its ${f.size} bytes were written`));
        return;
      }
      this.pwritev(chunks, f.dataOffset + written).then(() => {
        wrote(n);
        cb();
      }, cb);
    };
    // chunks that arrive while a write is in flight go out together (one pwritev), up to 256 KiB
    return new Writable({
      highWaterMark: 256 << 10,
      write: (chunk: Buffer, _enc, cb) => put([chunk], cb),
      writev: (chunks, cb) =>
        put(
          chunks.map((c) => c.chunk as Buffer),
          cb,
        ),
    });
  }

  /** Writes a small file whole (bytes already known). */
  async writeBytes(path: string, bytes: Uint8Array): Promise<void> {
    const f = this.file(path);
    if (bytes.length !== f.size)
      throw new SealiftError('INTERNAL', `${path}: ${bytes.length} bytes for an entry of ${f.size}`);
    await this.pwrite(bytes, f.dataOffset);
  }

  /**
   * The file is complete and verified: done for this run at once (its bytes are final), recorded
   * for a re-run once it is on disk (fdatasync, then its journal line). The writer does not wait
   * for that record: a sync flushes every dirty page of the tar, and waiting for it held a
   * transfer slot idle. A record that cannot be written fails the next markDone and complete().
   */
  async markDone(path: string): Promise<void> {
    const f = this.file(path);
    if (this.journalFailure) throw this.journalFailure.error;
    this.done.add(path);
    this.progress.delete(path);
    this.advanceHash();
    this.journalLine(`done ${recordKey(f)}\n`, true).catch((e: unknown) => {
      this.journalFailure ??= { error: e };
    });
  }

  /** Where the archive's final bytes end for now: the data of the first file in order not done. */
  private hashableEnd(r: NonNullable<PlannedTar['running']>): number {
    const files = this.layout.files;
    while (r.next < files.length && this.done.has(files[r.next]!.path)) r.next++;
    return r.next < files.length ? files[r.next]!.dataOffset : this.size;
  }

  /**
   * Queues a pass that hashes the archive on from where the last stopped to where its bytes are
   * final (headers and padding were written at open; a done file's data is complete and verified
   * and is never written again). A pass with nothing new to hash returns at once.
   */
  private advanceHash(): void {
    const r = this.running;
    if (!r) return;
    this.hashed = this.hashed.then(async () => {
      const end = this.hashableEnd(r);
      while (r.at < end) {
        const part = this.parts[r.part]!;
        const n = Math.min(r.buf.length, end - r.at, part.start + part.size - r.at);
        const { bytesRead } = await part.fh!.read(r.buf, 0, n, r.at - part.start);
        if (bytesRead === 0)
          throw new SealiftError('INTERNAL', `${part.tmp} ends at ${r.at - part.start} of ${part.size} bytes`);
        r.hash.update(r.buf.subarray(0, bytesRead));
        r.at += bytesRead;
        if (r.at === part.start + part.size) {
          r.digests.push(r.hash.digest('hex'));
          r.hash = createHash('sha256');
          r.part++;
        }
      }
    });
    // seen by complete(), which awaits it; until then no unhandled rejection
    this.hashed.catch(() => undefined);
  }

  /** The sha256 of every part, once every file is done: what the running hash has, the rest hashed now. */
  private async partDigests(r: NonNullable<PlannedTar['running']>): Promise<string[]> {
    this.advanceHash();
    await this.hashed;
    if (r.digests.length !== this.parts.length)
      throw new SealiftError('INTERNAL', `the tar was hashed to ${r.at} of ${this.size} bytes`);
    return r.digests;
  }

  /** Appends journal lines in batches: every line that arrives while one sync runs shares the next. */
  private journalLine(line: string, sync: boolean): Promise<void> {
    if (!this.batch) {
      const batch = { lines: [] as string[], sync: false, promise: Promise.resolve() };
      batch.promise = this.chain.then(async () => {
        if (this.batch === batch) this.batch = undefined;
        if (batch.sync) await Promise.all(this.parts.map((p) => p.fh!.datasync()));
        await this.journal!.write(batch.lines.join(''));
      });
      this.chain = batch.promise.catch(() => undefined);
      this.batch = batch;
    }
    this.batch.lines.push(line);
    if (sync) this.batch.sync = true;
    return this.batch.promise;
  }

  /** Every file must be done. Syncs, finishes each part's sha256 (the .sha256 beside the bundle), closes. */
  async complete(): Promise<(WrittenPart & { tmp: string })[]> {
    const missing = [...this.files.keys()].filter((p) => !this.done.has(p));
    if (missing.length)
      throw new SealiftError('INTERNAL', `the tar is not complete: ${missing.slice(0, 3).join(', ')} not written`);
    // every journal batch runs in `chain`: after it, every done record is written or has failed
    await this.chain;
    if (this.journalFailure) throw this.journalFailure.error;
    const digests = this.running ? await this.partDigests(this.running) : undefined;
    const out: (WrittenPart & { tmp: string })[] = [];
    for (const [i, p] of this.parts.entries()) {
      await p.fh!.sync();
      out.push({ tmp: p.tmp, path: p.final, size: p.size, sha256: digests?.[i] ?? '' });
    }
    await this.close();
    return out;
  }

  /** Renames the completed temp files to their final names and drops the journal. */
  async commit(parts: readonly (WrittenPart & { tmp: string })[]): Promise<void> {
    await swapIn(this.output, parts);
    await rm(this.journalPath, { force: true });
  }

  /** The temp files and journal go (a compressed bundle was made from them). */
  async discard(): Promise<void> {
    await this.close();
    await Promise.all([...this.parts.map((p) => rm(p.tmp, { force: true })), rm(this.journalPath, { force: true })]);
  }

  /** Closes the handles; the temp files and journal stay for a re-run. */
  async close(): Promise<void> {
    await this.chain;
    await this.hashed.catch(() => undefined);
    await Promise.all(this.parts.map((p) => p.fh?.close()));
    for (const p of this.parts) delete p.fh;
    await this.journal?.close();
    delete this.journal;
  }
}

/**
 * Removes what an earlier run left under the final names (`output` and its parts), then
 * renames the temp files in, and syncs the directory.
 */
export async function swapIn(output: string, parts: readonly { tmp: string; path: string }[]): Promise<void> {
  const dir = dirname(output);
  const stale = (await readdir(dir)).filter((n) => n === basename(output) || n.startsWith(`${basename(output)}.part-`));
  await Promise.all(stale.map((n) => rm(join(dir, n), { force: true })));
  for (const p of parts) await rename(p.tmp, p.path);
  await fsyncDir(dir);
}
