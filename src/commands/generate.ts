// `sealift generate -e <env> | --all [-o DIR]`: flags -> GenerateOptions -> the list of files written.
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { SealiftError } from '../errors.ts';
import type { GenerateResult } from '../generate/index.ts';
import { collect, overlayOption, overlaysFrom, stackDirFrom } from './flags.ts';
import { createOutput, withCommonFlags, type GlobalFlags } from './output.ts';

// verify.ts imports it from here

interface GenerateFlags extends GlobalFlags {
  env?: string[];
  all?: boolean;
  output: string;
  stack?: string;
  overlay?: string[];
}

export function registerGenerate(program: Command): void {
  const cmd = new Command('generate')
    .description(
      'Render templates/ + environments/<env>.yaml into a helmfile (helmfile.yaml.gotmpl) and values/<env>/<release>.yaml.',
    )
    .option('-e, --env <name>', 'environment to generate (repeatable)', collect)
    .option('--all', 'every environment in environments/ (except default)')
    .option(
      '-o, --output <dir>',
      'output directory (replaced atomically; fetched charts/ and release files are kept)',
      'generated',
    )
    .option(
      '--stack <dir>',
      'directory holding environments/ and templates/ (default: current directory, else the sealift checkout)',
    )
    .addOption(overlayOption());
  withCommonFlags(cmd).action(async (flags: GenerateFlags) => {
    if (!flags.all && !flags.env?.length) {
      throw new SealiftError('USAGE', 'say which environment: -e <name> (repeatable) or --all', {
        hint: 'e.g. sealift generate -e airgap -o site/',
      });
    }
    if (flags.all && flags.env?.length) throw new SealiftError('USAGE', '-e and --all exclude each other');
    const out = createOutput(flags);
    const { generate } = await import('../generate/index.ts');
    const result = await generate({
      stackDir: stackDirFrom(flags.stack),
      env: flags.all ? 'all' : flags.env!,
      outDir: resolve(flags.output),
      ...overlaysFrom(flags.overlay),
      onEvent: out.onEvent,
    });
    out.result({ ok: true, ...result }, (r: GenerateResult) => {
      const lines = r.files.map(
        (f) => `${f.action === 'written' ? 'wrote    ' : 'unchanged'} ${join(r.outDir, f.path)}`,
      );
      if (r.kept.length) lines.push(`kept ${r.kept.length} fetched file(s): ${r.kept.join(', ')}`);
      const written = r.files.filter((f) => f.action === 'written').length;
      lines.push(
        `${r.files.length} files for ${r.environments.join(', ')} in ${r.outDir} (${written} changed). Next: helmfile -f ${join(r.outDir, 'helmfile.yaml.gotmpl')} -e ${r.environments[0]} lint`,
      );
      return lines;
    });
    out.close();
  });
  program.addCommand(cmd);
}
