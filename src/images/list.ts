// Reading what a later stage is given with --imagelist: an image lock (.json, as `sealift images`
// writes it) or a plain text list (one reference a line, `#` comments and blank lines ignored).
// Both bundle and mirror read it here, so a bad line is named the same way (file:line) everywhere.
import { readFile } from 'node:fs/promises';
import { SealiftError, errorMessage } from '../errors.ts';
import type { Digest } from '../oci/types.ts';
import { readImageLock, type ImageLock } from './lock.ts';
import { normalizeImageReference, type ImageReference } from '../oci/reference.ts';

export interface ImageListEntry {
  /** as written: the list line (comment and blanks stripped) or the lock entry's reference */
  reference: string;
  /** `reference` normalized (no default tag added) */
  ref: ImageReference;
  /** the lock's resolved digest, else a pinned reference's digest */
  digest?: Digest;
  /** the lock's size in bytes, when it records one (what `mirror --shard` balances by) */
  size?: number;
  /** the releases that pull it (a lock); [] for a text list */
  releases: string[];
  /** file:line (list) or file: images[i] (lock), for messages */
  where: string;
}

export interface ImageList {
  entries: ImageListEntry[];
  /** set when the file was an image lock */
  lock?: ImageLock;
}

/** Reads `--imagelist FILE`: a `.json` image lock or a text list; an empty text list is refused. */
export async function readImageList(file: string): Promise<ImageList> {
  if (file.endsWith('.json')) {
    const lock = await readImageLock(file);
    return { entries: lockEntries(lock, file), lock };
  }
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new SealiftError('NOT_FOUND', `cannot read the image list ${file}: ${errorMessage(e)}`, {
      hint: 'Give a text file with one image reference a line, or an image lock (.json).',
    });
  }
  const entries: ImageListEntry[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/#.*$/, '').trim();
    if (!line) return;
    const where = `${file}:${i + 1}`;
    const ref = normalizeImageReference(line, where);
    entries.push({
      reference: line,
      ref,
      ...(ref.digest ? { digest: ref.digest as Digest } : {}),
      releases: [],
      where,
    });
  });
  if (entries.length === 0)
    throw new SealiftError('USAGE', `the image list ${file} names no images`, {
      hint: 'Write one image reference a line.',
    });
  return { entries };
}

/** A lock's entries, each named `file: images[i]`. */
export function lockEntries(lock: ImageLock, file: string): ImageListEntry[] {
  return lock.images.map((e, i) => {
    const where = `${file}: images[${i}]`;
    const ref = normalizeImageReference(e.reference, where);
    const digest = (e.digest ?? ref.digest) as Digest | undefined;
    const size = typeof e.size === 'number' && e.size >= 0 ? { size: e.size } : {};
    return { reference: e.reference, ref, ...(digest ? { digest } : {}), ...size, releases: [...e.releases], where };
  });
}
