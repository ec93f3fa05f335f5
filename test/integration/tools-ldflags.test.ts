// Issue 8 bug 10: helm as the set-up built it had none of its Makefile's ldflags: `helm version`
// showed an empty git commit, and with no cluster helm assumed Kubernetes v1.20.0, so `helm
// template` of any chart with kubeVersion ">=1.21.0-0" failed outside sealift. The set-up's
// tools (the same bytes bundles carry for linux/amd64) now report their version and commit.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { requireTool, toolEnv } from '../../src/tools.ts';
import { tempDir } from '../support/process.ts';

describe('issue 8 bug 10: the set-up builds helm, helmfile and helm-diff with their upstream ldflags', () => {
  it('helm reports its commit and templates a chart that needs Kubernetes >= 1.21 with no cluster', async () => {
    await using dir = await tempDir();
    const helm = requireTool('helm');
    const env = {
      ...process.env,
      ...toolEnv({ HELM_CACHE_HOME: join(dir.path, 'cache'), HELM_CONFIG_HOME: join(dir.path, 'config') }),
    };
    const version = await execa(helm, ['version'], { env });
    expect(version.stdout).toContain('Version:"v3.19.0"');
    expect(version.stdout).toContain('GitCommit:"3d8990f0836691f0229297773f3524598f46bda6"');
    expect(version.stdout).toContain('GitTreeState:"clean"');

    const chart = join(dir.path, 'needs-121');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(
      join(chart, 'Chart.yaml'),
      'apiVersion: v2\nname: needs-121\nversion: 1.0.0\nkubeVersion: ">=1.21.0-0"\n',
    );
    await writeFile(
      join(chart, 'templates', 'cm.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: kube\ndata:\n  version: {{ .Capabilities.KubeVersion.Version | quote }}\n',
    );
    const tpl = await execa(helm, ['template', 'x', chart], { env, reject: false });
    expect(tpl.exitCode, tpl.stderr).toBe(0);
    // client-go v0.34 -> Kubernetes 1.34, as helm's release binaries assume
    expect(tpl.stdout).toContain('version: "v1.34.0"');
  });

  it('helmfile and helm-diff report the pinned versions', async () => {
    const helmfile = await execa(requireTool('helmfile'), ['--version']);
    expect(helmfile.stdout).toMatch(/version v?1\.8\.0/);
    const diff = await execa(requireTool('helm'), ['diff', 'version'], { env: { ...process.env, ...toolEnv() } });
    expect(diff.stdout.trim()).toBe('3.9.14');
  });
});
