// The command line: wires commands to the pipeline stages. Each command lives in src/commands/
// and only translates flags into a stage's options; rendering and exit codes are in output.ts.
import { Command } from 'commander';
import { runMain } from './commands/output.ts';
import { registerCommands } from './commands/index.ts';
import { IS_EXECUTABLE, SEALIFT_VERSION, sealiftCommit } from './runtime.ts';

const program = new Command('sealift')
  .description(
    'Carry a Kubernetes application stack across an air gap: generate, images, bundle, load, mirror, verify.',
  )
  // version and commit (the commit only when asked: a checkout asks git for it)
  .option('-V, --version', 'output the version number and the commit it was built from')
  .on('option:version', () => {
    process.stdout.write(
      `sealift ${SEALIFT_VERSION} (commit ${sealiftCommit()}${IS_EXECUTABLE ? ', single executable' : ''})\n`,
    );
    process.exit(0);
  })
  .showHelpAfterError()
  .configureHelp({ sortSubcommands: false });

registerCommands(program);

// no top-level await: the single executable runs this file as CommonJS (runMain never rejects)
void runMain(program, process.argv);
