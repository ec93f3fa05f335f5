// A real containerd (Debian's 1.6) as a plain process: its own root, state and socket in a temp
// dir, the CRI plugin off (no kubelet here), so tests can pull with `ctr` exactly as a node would.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { requireTool } from '../../src/tools.ts';
import { startProcess, tempDir } from './process.ts';

export interface TestContainerd {
  /** the gRPC socket, for `ctr -a` */
  socket: string;
  dir: string;
  /** runs `ctr -a SOCK <args>` and returns stdout; throws with stderr on failure */
  ctr(args: string[]): Promise<string>;
  stop(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export async function startContainerd(): Promise<TestContainerd> {
  const bin = requireTool('containerd');
  const ctrBin = requireTool('ctr');
  const tmp = await tempDir('sealift-ctrd-');
  const socket = join(tmp.path, 'c.sock');
  const config = `version = 2
root = "${join(tmp.path, 'root')}"
state = "${join(tmp.path, 'state')}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs"]
[grpc]
  address = "${socket}"
[ttrpc]
  address = "${join(tmp.path, 'c.ttrpc.sock')}"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.internal.v1.opt"]
  path = "${join(tmp.path, 'opt')}"
`;
  const configPath = join(tmp.path, 'config.toml');
  await writeFile(configPath, config);
  const ctr = async (args: string[]): Promise<string> => {
    const r = await execa(ctrBin, ['-a', socket, ...args], { reject: false, timeout: 120_000 });
    if (r.exitCode !== 0)
      throw new Error(`ctr ${args.join(' ')} failed (exit ${r.exitCode}):\n${r.stderr}\n${r.stdout}`);
    return r.stdout;
  };
  const proc = await startProcess(bin, ['--config', configPath], {
    name: 'containerd',
    ready: async () =>
      (await execa(ctrBin, ['-a', socket, 'version'], { reject: false, timeout: 2000 })).exitCode === 0,
  });
  const stop = async () => {
    await proc.stop();
    await tmp[Symbol.asyncDispose]();
  };
  return { socket, dir: tmp.path, ctr, stop, [Symbol.asyncDispose]: stop };
}
