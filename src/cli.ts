// The command line: wires commands to the pipeline stages. Each command lives in src/commands/
// and only translates flags into a stage's options; rendering and exit codes are in output.ts.
import { Command } from 'commander';
import { runMain } from './commands/output.ts';
import { registerCommands } from './commands/index.ts';

const program = new Command('sealift')
  .description(
    'Carry a Kubernetes application stack across an air gap: generate, images, bundle, load, mirror, verify.',
  )
  .version(process.env.npm_package_version ?? '0.1.0')
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerCommands(program);

await runMain(program, process.argv);
