// The sealift CLI as a user runs it: the project's bin under the current Node, never throwing on a
// non-zero exit (tests assert exit codes), CI=true so no TTY progress is drawn.
import { join } from 'node:path';
import { execa } from 'execa';
import { PROJECT_ROOT } from '../../src/tools.ts';

export const SEALIFT_BIN = join(PROJECT_ROOT, 'bin', 'sealift.js');

export interface RunOptions {
  cwd?: string;
  /** added to this process's environment */
  env?: Record<string, string | undefined>;
  timeout?: number;
}

export function runSealift(args: string[], opts: RunOptions = {}) {
  return execa(process.execPath, [SEALIFT_BIN, ...args], {
    reject: false,
    cwd: opts.cwd ?? PROJECT_ROOT,
    env: { CI: 'true', ...opts.env },
    ...(opts.timeout ? { timeout: opts.timeout } : {}),
  });
}
