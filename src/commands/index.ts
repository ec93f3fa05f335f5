// One line per command: each module adds its commander command to the program.
import type { Command } from 'commander';
import { registerLoad } from './load.ts';
import { registerMirror } from './mirror.ts';
import { registerGenerate } from './generate.ts';
import { registerImages } from './images.ts';
import { registerVerify } from './verify.ts';
import { registerBundle } from './bundle.ts';

export function registerCommands(program: Command): void {
  void program;
  registerLoad(program);
  registerMirror(program);
  registerGenerate(program);
  registerImages(program);
  registerVerify(program);
  registerBundle(program);
}
