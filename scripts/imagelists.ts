// Regenerates the committed imagelists/ from the fixture charts (../shared/fixtures), served on
// 127.0.0.1 as the tests serve them: `node scripts/imagelists.ts [--check]`. The committed lists
// are the contract that `images --all --check` holds the charts to; a change to the stack, its
// values or the rules regenerates them here, never against the internet.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startChartServers } from '../test/support/chart-servers.ts';

const servers = await startChartServers();
const dir = await mkdtemp(join(tmpdir(), 'sealift-imagelists-'));
try {
  const overlay = join(dir, 'sources.yaml');
  await writeFile(overlay, await servers.sourcesOverlayYaml());
  const args = ['bin/sealift.js', 'images', '--all', '--overlay', overlay, ...process.argv.slice(2)];
  const r = await execa('node', args, { reject: false, stdio: 'inherit' });
  process.exitCode = r.exitCode ?? 1;
} finally {
  await servers.stop();
  await rm(dir, { recursive: true, force: true });
}
