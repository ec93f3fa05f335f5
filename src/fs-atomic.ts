// Nothing is half-written: every file goes to a temp name in the same directory, is fsynced,
// then renamed over the target. A directory tree is built beside its target and swapped in.
import { randomBytes } from 'node:crypto';
import { mkdir, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, basename } from 'node:path';

/** A temp name beside `target` (same directory, so a rename is atomic): `.<name>.<random>.tmp`. */
export function tempName(target: string): string {
  return join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.tmp`);
}

/** fsync of a file already written (through a stream, say): its bytes are on disk when this returns. */
export async function fsyncFile(path: string): Promise<void> {
  const fh = await open(path, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** fsync of a directory: a rename or create inside it survives a power cut once this returns. */
export async function fsyncDir(dir: string): Promise<void> {
  await fsyncFile(dir);
}

export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempName(target);
  const fh = await open(tmp, 'w');
  try {
    await fh.writeFile(data);
    await fh.sync();
  } catch (e) {
    await fh.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await fh.close();
  await rename(tmp, target);
}

/**
 * Builds a directory at a temp name and swaps it in for `target` only when `build` succeeds.
 * On failure the previous `target` is untouched and the temp tree is removed.
 */
export async function replaceDirAtomic(target: string, build: (tmpDir: string) => Promise<void>): Promise<void> {
  await mkdir(dirname(target), { recursive: true });
  const tmp = tempName(target);
  await mkdir(tmp, { recursive: true });
  try {
    await build(tmp);
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
  const old = `${tmp}.old`;
  const exists = await stat(target).then(
    () => true,
    () => false,
  );
  if (exists) await rename(target, old);
  await rename(tmp, target);
  if (exists) await rm(old, { recursive: true, force: true });
}

export async function pathExists(p: string): Promise<boolean> {
  return stat(p).then(
    () => true,
    () => false,
  );
}
