// Output paths checked before any work: a run that would fail at its last step because an
// output directory is a file (or cannot be written) fails at its first, having done nothing.
import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { SealiftError } from './errors.ts';

async function kind(p: string): Promise<'dir' | 'file' | 'none'> {
  try {
    return (await stat(p)).isDirectory() ? 'dir' : 'file';
  } catch (e) {
    // ENOTDIR: a parent is a file; the walk up finds it
    if (['ENOENT', 'ENOTDIR'].includes((e as NodeJS.ErrnoException).code ?? '')) return 'none';
    throw e;
  }
}

/**
 * `dir` is a directory this process can write, or can be created: no part of it is a file.
 * `flag` names where the path came from (`-o`, `--extract-to`).
 */
export async function checkOutputDir(dir: string, flag: string): Promise<void> {
  let at = resolve(dir);
  for (;;) {
    const k = await kind(at);
    if (k === 'file')
      throw new SealiftError(
        'USAGE',
        at === resolve(dir)
          ? `${flag} ${dir}: is a file, not a directory`
          : `${flag} ${dir}: ${at} is a file, so the directory cannot be made`,
        { hint: `Give ${flag} a directory (it is created when missing); nothing was written.` },
      );
    if (k === 'dir') break;
    const parent = dirname(at);
    if (parent === at) break;
    at = parent;
  }
  try {
    await access(at, constants.W_OK);
  } catch {
    throw new SealiftError('USAGE', `${flag} ${dir}: ${at} is not writable`, {
      hint: `Give ${flag} a directory you can write; nothing was written.`,
    });
  }
}

/** `file`, an output file, is not a directory (a file or nothing is fine: it is replaced). */
export async function checkOutputFile(file: string, flag: string): Promise<void> {
  if ((await kind(file)) === 'dir')
    throw new SealiftError('USAGE', `${flag}: ${file} is a directory, where the output file must go`, {
      hint: 'Move it away or choose another name (--name); nothing was written.',
    });
}
