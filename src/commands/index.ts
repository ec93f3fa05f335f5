// One line per command, in pipeline order (the order `sealift --help` lists them).
import type { Command } from 'commander';
import { registerAdd } from './add.ts';
import { registerGenerate } from './generate.ts';
import { registerImages } from './images.ts';
import { registerBundle } from './bundle.ts';
import { registerLoad } from './load.ts';
import { registerMirror } from './mirror.ts';
import { registerVerify } from './verify.ts';
import { registerCheck } from './check.ts';
import { registerSize } from './size.ts';

export function registerCommands(program: Command): void {
  registerGenerate(program);
  registerImages(program);
  registerBundle(program);
  registerLoad(program);
  registerMirror(program);
  registerVerify(program);
  // preflight before the install: compatibility and resources
  registerCheck(program);
  registerSize(program);
  registerAdd(program);
}
