// One line per command: each module adds its commander command to the program.
import type { Command } from 'commander';

export function registerCommands(program: Command): void {
  void program;
}
