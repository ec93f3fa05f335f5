// How the benchmarks run sealift: by default the single executable of this checkout
// (dist/sealift-<os>-<arch>, what the bundle carries to a site and what a build host can run:
// one bundled script, its V8 flags built in), built first by scripts/build-exe.ts (a no-op when
// it is current); `--entry source` runs bin/sealift.js on this Node instead, which strips the
// TypeScript of every module at each start.
import { join } from 'node:path';
import { buildExecutables } from '../scripts/build-exe.ts';
import { hostPlatform } from '../src/bundle-format/index.ts';
import { PROJECT_ROOT } from '../src/tools.ts';

export type SealiftEntry = 'exe' | 'source';

export interface SealiftCommand {
  /** what runs, for the printed table */
  label: string;
  file: string;
  /** arguments before sealift's own */
  prefix: string[];
}

export async function sealiftCommand(entry: SealiftEntry): Promise<SealiftCommand> {
  if (entry === 'source')
    return { label: 'node bin/sealift.js', file: process.execPath, prefix: [join(PROJECT_ROOT, 'bin/sealift.js')] };
  const [built] = await buildExecutables([hostPlatform()]);
  return { label: `single executable (${built!.file.slice(PROJECT_ROOT.length + 1)})`, file: built!.file, prefix: [] };
}

export function parseEntry(value: string | undefined): SealiftEntry {
  if (value === undefined || value === 'exe') return 'exe';
  if (value === 'source') return 'source';
  throw new Error(`--entry ${value}: one of exe, source`);
}
