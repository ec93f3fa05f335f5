#!/usr/bin/env node
// Node >= 22.18 runs TypeScript by stripping types; sealift ships its sources as they are.
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(
    `sealift needs Node.js >= 22.18 (found ${process.versions.node}). Run scripts/setup.sh, which installs one into .tools/node.\n`,
  );
  process.exit(70);
}
await import('../src/cli.ts');
