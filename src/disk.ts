// Disk space: what a directory's file system has free, and "disk full" as an error a user can act
// on (which directory, how much was needed, how much is free) instead of a raw ENOSPC.
import { statfs } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SealiftError, isSealiftError } from './errors.ts';

const FULL = new Set(['ENOSPC', 'EDQUOT']);

/** Bytes for people: 1.5 MiB. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(i === 0 ? 0 : 1)} ${units[i]}`;
}

/** Bytes an unprivileged writer may still use on the file system holding `dir` (or its nearest parent). */
export async function freeBytes(dir: string): Promise<number> {
  let at = resolve(dir);
  for (;;) {
    try {
      const s = await statfs(at);
      return s.bavail * s.bsize;
    } catch (e) {
      const parent = dirname(at);
      if (parent === at || (e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      at = parent;
    }
  }
}

/** The ENOSPC (or quota) error anywhere in `e`'s cause chain, if any. */
export function diskFullCause(e: unknown): NodeJS.ErrnoException | undefined {
  for (let c: unknown = e, depth = 0; c && depth < 8; c = (c as { cause?: unknown }).cause, depth++) {
    const code = (c as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && FULL.has(code)) return c as NodeJS.ErrnoException;
  }
  return undefined;
}

/**
 * A DISK_FULL error for `dir` while doing `what`, with the free space now and, when known, the
 * bytes needed. `cause` is the ENOSPC when there was one.
 */
export async function diskFullError(
  dir: string,
  what: string,
  opts: { needed?: number; cause?: unknown } = {},
): Promise<SealiftError> {
  const free = await freeBytes(dir).catch(() => undefined);
  // exact bytes where the rounded sizes would read the same ("4.0 MiB needed, 4.0 MiB free")
  const close = opts.needed !== undefined && free !== undefined && formatBytes(opts.needed) === formatBytes(free);
  const size = (n: number) => (close ? `${n} bytes` : formatBytes(n));
  const needed = opts.needed === undefined ? '' : `${size(opts.needed)} needed, `;
  const path = (opts.cause as NodeJS.ErrnoException | undefined)?.path;
  return new SealiftError(
    'DISK_FULL',
    `disk full: ${what} in ${resolve(dir)}${path ? ` (writing ${path})` : ''}: ${needed}${free === undefined ? 'free space unknown' : `${size(free)} free`}`,
    {
      hint: 'Free space there (or choose another directory) and run the same command again; what was already written is kept.',
      details: { dir: resolve(dir), ...(opts.needed !== undefined ? { needed: opts.needed } : {}), free },
      ...(opts.cause ? { cause: opts.cause } : {}),
    },
  );
}

/** Fails with DISK_FULL before any byte is written when `dir` has less than `needed` bytes free. */
export async function ensureFreeSpace(dir: string, needed: number, what: string): Promise<void> {
  if ((await freeBytes(dir)) < needed) throw await diskFullError(dir, what, { needed });
}

/**
 * Runs `work`; an ENOSPC anywhere inside (even wrapped in another error, e.g. a registry error that
 * came from writing the body to disk) becomes DISK_FULL for `dir`. Other errors pass unchanged.
 */
export async function reportDiskFull<T>(dir: string, what: string, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (e) {
    const full = diskFullCause(e);
    if (!full || (isSealiftError(e) && e.code === 'DISK_FULL')) throw e;
    throw await diskFullError(dir, what, { cause: full });
  }
}
