// The extractor over manifests written the way charts other than the fixtures write them: every
// workload kind, custom resources with pod templates or container lists, ConfigMaps with JSON and
// YAML in strings, split references, args and env, and the things that must not be listed.
import { describe, expect, it } from 'vitest';
import { findImages, formatOrigin, isImageKey, keyWords, type ExtractionResult } from '../../src/images/extract.ts';
import { EMPTY_RULES, loadRules, parseRuleFile, type RuleSet } from '../../src/images/rules.ts';
import { parseManifests } from '../../src/render/manifests.ts';

function extract(yaml: string, rules: RuleSet = EMPTY_RULES, chart?: string): ExtractionResult {
  const { documents, problems } = parseManifests(yaml, 'test.yaml');
  expect(problems).toEqual([]);
  return findImages(documents, { release: 'rel', rules, ...(chart ? { chart } : {}) });
}

const refs = (r: ExtractionResult) => [...new Set(r.findings.map((f) => f.reference))].sort();
const pathsOf = (r: ExtractionResult, ref: string) =>
  r.findings.filter((f) => f.reference === ref).map((f) => f.origin.path);
const excludedReason = (r: ExtractionResult, value: string) => r.excluded.find((x) => x.value === value)?.reason;

const D = `sha256:${'ab'.repeat(32)}`;

describe('pod specs anywhere', () => {
  it('finds containers, initContainers and ephemeralContainers in every workload kind', () => {
    const r = extract(`
apiVersion: apps/v1
kind: Deployment
metadata: { name: web }
spec:
  template:
    spec:
      initContainers: [{ name: init, image: "busybox:1.36" }]
      containers: [{ name: app, image: nginx }, { name: side, image: "ghcr.io/org/side:v2@${D}" }]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: { name: db }
spec: { template: { spec: { containers: [{ name: pg, image: "postgres:16" }] } } }
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent }
spec: { template: { spec: { containers: [{ name: a, image: "quay.io/org/agent:1" }] } } }
---
apiVersion: batch/v1
kind: CronJob
metadata: { name: backup }
spec:
  jobTemplate:
    spec:
      template:
        spec:
          containers: [{ name: b, image: "registry.example.com:5000/tools/backup:2024.1" }]
---
apiVersion: v1
kind: Pod
metadata: { name: debug }
spec:
  containers: [{ name: c, image: "alpine:3.20" }]
  ephemeralContainers: [{ name: dbg, image: "nicolaka/netshoot:v0.13" }]
`);
    expect(refs(r)).toEqual([
      'docker.io/library/alpine:3.20',
      'docker.io/library/busybox:1.36',
      'docker.io/library/nginx:latest',
      'docker.io/library/postgres:16',
      'docker.io/nicolaka/netshoot:v0.13',
      `ghcr.io/org/side:v2@${D}`,
      'quay.io/org/agent:1',
      'registry.example.com:5000/tools/backup:2024.1',
    ]);
    expect(pathsOf(r, 'registry.example.com:5000/tools/backup:2024.1')).toEqual([
      'spec.jobTemplate.spec.template.spec.containers[0].image',
    ]);
    const netshoot = r.findings.find((f) => f.reference.includes('netshoot'))!;
    expect(formatOrigin(netshoot.origin)).toBe('rel: Pod debug spec.ephemeralContainers[0].image');
    expect(netshoot.origin.source).toBe('test.yaml');
  });

  it('finds container lists and pod templates in custom resources of any kind', () => {
    const r = extract(`
apiVersion: serving.kserve.io/v1alpha1
kind: ClusterServingRuntime
metadata: { name: rt }
spec:
  containers: [{ name: kserve-container, image: "org/server:1.0" }]
  workerSpec: { containers: [{ name: worker, image: "org/server:1.0-gpu" }] }
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: { name: wf }
spec:
  templates:
    - name: step
      container: { image: "python:3.12", command: [python] }
---
apiVersion: tekton.dev/v1
kind: Task
metadata: { name: t }
spec:
  steps:
    - name: build
      image: ubuntu
      script: echo hi
---
apiVersion: example.com/v1
kind: Thing
metadata: { name: x }
spec:
  podTemplate: { spec: { initContainers: [{ name: i, image: "example.com/init:3" }] } }
`);
    expect(refs(r)).toEqual([
      'docker.io/library/python:3.12',
      'docker.io/library/ubuntu:latest', // a bare name is kept where the object is plainly a container
      'docker.io/org/server:1.0',
      'docker.io/org/server:1.0-gpu',
      'example.com/init:3',
    ]);
    expect(pathsOf(r, 'docker.io/org/server:1.0-gpu')).toEqual(['spec.workerSpec.containers[0].image']);
  });

  it('walks List items as resources of their own', () => {
    const r = extract(`
apiVersion: v1
kind: List
items:
  - apiVersion: v1
    kind: Pod
    metadata: { name: p1 }
    spec: { containers: [{ name: c, image: "a.io/x:1" }] }
`);
    expect(r.findings.map((f) => formatOrigin(f.origin))).toEqual(['rel: Pod p1 spec.containers[0].image']);
  });
});

describe('images outside pod specs', () => {
  it('reads image fields in ConfigMap data: plain keys, JSON and YAML in strings, split references', () => {
    const r = extract(`
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg, namespace: ns }
data:
  queue-sidecar-image: "gcr.io/org/queue@${D}"
  agent: |-
    {
        "image" : "org/agent:v1",
        "memoryRequest": "100Mi"
    }
  explainers: |-
    { "art": { "image": "org/explainer", "defaultImageVersion": "v1" } }
  settings.yaml: |
    worker:
      image:
        registry: quay.io
        repository: org/worker
        tag: "2.1"
    sidecar:
      image: org/sidecar
      tag: "3"
    helper:
      hub: docker.io/org
      image: helper
      tag: "4"
  defaultJobImage: "org/job:latest"
`);
    expect(refs(r)).toEqual([
      'docker.io/org/agent:v1',
      'docker.io/org/explainer:v1',
      'docker.io/org/helper:4',
      'docker.io/org/job:latest',
      'docker.io/org/sidecar:3',
      `gcr.io/org/queue@${D}`,
      'quay.io/org/worker:2.1',
    ]);
    expect(pathsOf(r, 'docker.io/org/explainer:v1')).toEqual(['data.explainers.art.{image,defaultImageVersion}']);
    expect(pathsOf(r, 'quay.io/org/worker:2.1')).toEqual(['data.settings.yaml.worker.image.{repository,registry,tag}']);
    expect(pathsOf(r, 'docker.io/org/helper:4')).toEqual(['data.settings.yaml.helper.{image,hub,tag}']);
    expect(pathsOf(r, 'docker.io/org/agent:v1')).toEqual(['data.agent.image']);
  });

  it('composes repository + image + version of operator resources (NVIDIA ClusterPolicy style)', () => {
    const r = extract(`
apiVersion: nvidia.com/v1
kind: ClusterPolicy
metadata: { name: cluster-policy }
spec:
  driver:
    enabled: true
    repository: nvcr.io/nvidia
    image: driver
    version: "550.90.07"
    manager: { repository: nvcr.io/nvidia/cloud-native, image: k8s-driver-manager, version: v0.6.10 }
  devicePlugin: { repository: nvcr.io/nvidia, image: k8s-device-plugin, version: v0.16.2, imagePullPolicy: IfNotPresent }
`);
    expect(refs(r)).toEqual([
      'nvcr.io/nvidia/cloud-native/k8s-driver-manager:v0.6.10',
      'nvcr.io/nvidia/driver:550.90.07',
      'nvcr.io/nvidia/k8s-device-plugin:v0.16.2',
    ]);
    expect(pathsOf(r, 'nvcr.io/nvidia/driver:550.90.07')).toEqual(['spec.driver.{image,repository,version}']);
  });

  it('reads image fields of custom resources, annotations and image lists', () => {
    const r = extract(`
apiVersion: caching.internal.knative.dev/v1alpha1
kind: Image
metadata:
  name: queue-proxy
  annotations: { sidecar.example.io/proxyImage: "example.io/proxy:1.2" }
spec:
  image: "gcr.io/org/queue@${D}"
---
apiVersion: example.com/v1
kind: Mirror
metadata: { name: m }
spec:
  images: ["a.io/one:1", "a.io/two:2"]
`);
    expect(refs(r)).toEqual(['a.io/one:1', 'a.io/two:2', 'example.io/proxy:1.2', `gcr.io/org/queue@${D}`]);
  });

  it('reads images from container args and env', () => {
    const r = extract(`
apiVersion: apps/v1
kind: Deployment
metadata: { name: ctl }
spec:
  template:
    spec:
      containers:
        - name: c
          image: "quay.io/org/ctl:1"
          args:
            - --v=2
            - --acme-http01-solver-image=quay.io/org/solver:1
            - --helper-image
            - quay.io/org/helper:1
            - --image-pull-policy=Always
            - -nop-image
            - nop
          command: ["sh", "-c", "exec run --init-image=quay.io/org/init:1 --x=y"]
          env:
            - { name: RELATED_IMAGE_PROXY, value: "quay.io/org/proxy:1" }
            - { name: LOG_LEVEL, value: debug }
            - { name: SIDECAR_IMAGE, value: "$(OTHER)" }
            - { name: IMAGE_PULL_SECRET, value: my-secret }
`);
    expect(refs(r)).toEqual([
      'docker.io/library/nop:latest', // a flag named for an image holds one, even a bare name
      'quay.io/org/ctl:1',
      'quay.io/org/helper:1',
      'quay.io/org/init:1',
      'quay.io/org/proxy:1',
      'quay.io/org/solver:1',
    ]);
    expect(r.findings.filter((f) => f.reference === 'quay.io/org/helper:1')).toHaveLength(1);
    expect(r.findings.find((f) => f.reference === 'quay.io/org/solver:1')?.origin).toMatchObject({
      via: 'arg',
      path: 'spec.template.spec.containers[0].args[1]',
    });
    expect(r.findings.find((f) => f.reference === 'quay.io/org/proxy:1')?.origin).toMatchObject({
      via: 'env',
      path: 'spec.template.spec.containers[0].env[0].value',
    });
    expect(excludedReason(r, '$(OTHER)')).toMatch(/template placeholder/);
    expect(excludedReason(r, 'my-secret')).toMatch(/bare name/);
  });
});

describe('values that can only be images, under any key', () => {
  it('takes registry/path:tag values from args, env and custom resource fields; not host:port paths or URLs', () => {
    const r = extract(`
apiVersion: apps/v1
kind: Deployment
metadata: { name: prometheus-operator }
spec:
  template:
    spec:
      containers:
        - name: op
          image: "quay.io/prometheus-operator/prometheus-operator:v0.73.0"
          args:
            - --prometheus-config-reloader=quay.io/prometheus-operator/prometheus-config-reloader:v0.73.0
            - --kubelet-service=kube-system/kubelet
            - --web.listen-address=:8080
          env:
            - { name: DEFAULT_SIDECAR, value: "registry.k8s.io/pause:3.9" }
            - { name: OTEL_ENDPOINT, value: "otel.monitoring.svc:4317/v1/traces" }
---
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: { name: knative-serving }
spec:
  registry:
    override:
      activator: "10.61.3.31:35000/knative-releases/knative.dev/serving/cmd/activator@${D}"
      net-istio-controller/controller: "10.61.3.31:35000/knative-releases/knative.dev/net-istio/cmd/controller:v1.15.1"
  config:
    istio: { discoveryAddress: "istiod.istio-system.svc:15012", module: "github.com/org/repo", docs: "example.com/path" }
`);
    expect(refs(r)).toEqual([
      '10.61.3.31:35000/knative-releases/knative.dev/net-istio/cmd/controller:v1.15.1',
      `10.61.3.31:35000/knative-releases/knative.dev/serving/cmd/activator@${D}`,
      'quay.io/prometheus-operator/prometheus-config-reloader:v0.73.0',
      'quay.io/prometheus-operator/prometheus-operator:v0.73.0',
      'registry.k8s.io/pause:3.9',
    ]);
    expect(r.findings.find((f) => f.reference.includes('activator'))!.origin).toMatchObject({
      via: 'value',
      path: 'spec.registry.override.activator',
    });
    expect(r.excluded).toEqual([]);
  });

  it('reads version=image maps in env values (Strimzi style), line by line', () => {
    const r = extract(`
apiVersion: apps/v1
kind: Deployment
metadata: { name: strimzi-cluster-operator }
spec:
  template:
    spec:
      containers:
        - name: op
          image: "quay.io/strimzi/operator:0.39.0"
          env:
            - name: STRIMZI_KAFKA_IMAGES
              value: |
                3.5.0=quay.io/strimzi/kafka:0.39.0-kafka-3.5.0
                3.6.0=quay.io/strimzi/kafka:0.39.0-kafka-3.6.0
            - name: STRIMZI_DEFAULT_TLS_SIDECAR_ENTITY_OPERATOR_IMAGE
              value: quay.io/strimzi/kafka:0.39.0-kafka-3.6.0
`);
    expect(refs(r)).toEqual([
      'quay.io/strimzi/kafka:0.39.0-kafka-3.5.0',
      'quay.io/strimzi/kafka:0.39.0-kafka-3.6.0',
      'quay.io/strimzi/operator:0.39.0',
    ]);
    expect(pathsOf(r, 'quay.io/strimzi/kafka:0.39.0-kafka-3.5.0')).toEqual([
      'spec.template.spec.containers[0].env[0].value@L1.3.5.0',
    ]);
  });
});

describe('config kept in Secrets and in plain config files', () => {
  it('decodes Secret data, and reads `key value` lines', () => {
    const values = Buffer.from(
      'singleuser:\n  image:\n    name: quay.io/jupyterhub/k8s-singleuser-sample\n    tag: "3.0.0"\n',
    ).toString('base64');
    const r = extract(`
apiVersion: v1
kind: Secret
metadata: { name: hub }
data:
  values.yaml: ${values}
  token: ${Buffer.from([0, 1, 2, 250, 251]).toString('base64')}
---
apiVersion: v1
kind: ConfigMap
metadata: { name: spark-defaults }
data:
  spark-defaults.conf: |
    spark.kubernetes.container.image   apache/spark:3.5.0
    spark.executor.memory 2g
`);
    expect(refs(r)).toEqual(['docker.io/apache/spark:3.5.0', 'quay.io/jupyterhub/k8s-singleuser-sample:3.0.0']);
    expect(pathsOf(r, 'quay.io/jupyterhub/k8s-singleuser-sample:3.0.0')).toEqual([
      'data.values.yaml.singleuser.image.{name,tag}',
    ]);
  });
});

describe('what is not listed, and why', () => {
  it('skips CRDs, keeps test hooks out, and rejects placeholders, bare names and non-references with a reason', () => {
    const r = extract(`
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: things.example.com }
spec:
  versions:
    - schema: { openAPIV3Schema: { properties: { image: { type: string, description: "image: nginx:1 for example" } } } }
---
apiVersion: v1
kind: Pod
metadata:
  name: rel-test-connection
  annotations: { helm.sh/hook: test }
spec: { containers: [{ name: wget, image: "busybox:1.36" }] }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: cfg }
data:
  values: |
    { "global": { "proxy": { "image": "proxyv2", "resources": {} } }, "ui": { "image": "Not A Reference" } }
  templates: |
    containers:
    - name: proxy
      image: "{{ .ProxyImage }}"
`);
    expect(refs(r)).toEqual([]);
    expect(r.skipped).toEqual([
      {
        release: 'rel',
        kind: 'CustomResourceDefinition',
        name: 'things.example.com',
        reason: expect.stringContaining('CRD'),
      },
    ]);
    expect(excludedReason(r, 'docker.io/library/busybox:1.36')).toMatch(/chart test hook/);
    expect(excludedReason(r, 'proxyv2')).toMatch(/bare name/);
    expect(excludedReason(r, 'Not A Reference')).toMatch(/not an image reference/);
    expect(excludedReason(r, '{{ .ProxyImage }}')).toMatch(/template placeholder/);
  });

  it("takes a malformed image in a pod template kept in ConfigMap text for some other tool's template, not an error", () => {
    const r = extract(`
apiVersion: v1
kind: ConfigMap
metadata: { name: job-template }
data:
  pod.yaml: |
    spec:
      containers:
        - name: job
          image: $JOB_IMAGE
        - name: helper
          image: example.com/helper:1
`);
    expect(r.problems).toEqual([]);
    expect(refs(r)).toEqual(['example.com/helper:1']);
    expect(excludedReason(r, '$JOB_IMAGE')).toMatch(/not an image reference/);
  });

  it('reports a malformed image in a container as an error naming where it is, and goes on', () => {
    const r = extract(`
apiVersion: v1
kind: Pod
metadata: { name: p, namespace: ns }
spec: { containers: [{ name: a, image: "Quay.io/Org/App:1" }, { name: b, image: "ok.io/b:1" }] }
`);
    expect(refs(r)).toEqual(['ok.io/b:1']);
    expect(r.problems).toHaveLength(1);
    expect(r.problems[0]).toMatchObject({ severity: 'error', code: 'REF_INVALID' });
    expect(r.problems[0]!.message).toContain('"Quay.io/Org/App:1"');
    expect(r.problems[0]!.message).toContain('Pod ns/p, spec.containers[0].image');
    expect(r.problems[0]!.message).toContain('lowercase');
  });
});

describe('rules', () => {
  const rules: RuleSet = {
    rules: parseRuleFile(
      `
rules:
  - id: mesh-proxy
    description: the mesh webhook injects its proxy
    match: { kind: ConfigMap, name: "mesh-injector*" }
    inject:
      from: data.values
      image:
        - { template: "{global.proxy.image}", when: { field: global.proxy.image, value: "*/*" } }
        - { template: "{global.hub}/{global.proxy.image}:{global.tag}-{global.variant}", unless: { field: global.variant, value: default } }
        - "{global.hub}/{global.proxy.image}:{global.tag}"
      consumes: [global.proxy_init.image]
  - id: placeholder-auto
    description: auto is filled in by the injector
    exclude: { field: "**.containers[*].image", value: auto }
  - id: examples
    description: example blocks are documentation
    match: { kind: ConfigMap }
    exclude: { field: "data._example**" }
  - id: optional-job
    description: used only when the feature is on; no value sets it
    match: { kind: ConfigMap, name: app-config }
    knobless: { field: data.feature.jobImage }
`,
      'rules/test.yaml',
    ),
  };

  it('composes an injected image from fields of the matched resource and consumes its parts', () => {
    const r = extract(
      `
apiVersion: v1
kind: ConfigMap
metadata: { name: mesh-injector-canary }
data:
  values: '{"global": {"hub": "docker.io/mesh", "tag": "1.2.3", "variant": "", "proxy": {"image": "proxy"}, "proxy_init": {"image": "proxy"}}}'
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: gw }
spec: { template: { spec: { containers: [{ name: istio-proxy, image: auto }] } } }
`,
      rules,
    );
    expect(refs(r)).toEqual(['docker.io/mesh/proxy:1.2.3']);
    expect(r.findings[0]!.origin).toMatchObject({
      via: 'rule',
      rule: 'mesh-proxy',
      path: 'data.values.{global.hub,global.proxy.image,global.tag}',
    });
    expect(r.excluded.map((x) => [x.value, x.origin.rule])).toEqual([
      ['proxy', 'mesh-proxy'],
      ['proxy', 'mesh-proxy'],
      ['auto', 'placeholder-auto'],
    ]);
    expect(excludedReason(r, 'auto')).toContain('auto is filled in by the injector');
  });

  it.each([
    ['{"hub": "h.io/m", "tag": "1", "variant": "distroless", "proxy": {"image": "p"}}', 'h.io/m/p:1-distroless'],
    ['{"hub": "h.io/m", "tag": "1", "variant": "default", "proxy": {"image": "p"}}', 'h.io/m/p:1'],
    ['{"hub": "h.io/m", "tag": "1", "proxy": {"image": "other.io/own/proxy:2"}}', 'other.io/own/proxy:2'],
  ])('takes the first template whose conditions hold and fields are set: %s', (global, want) => {
    const r = extract(
      `
apiVersion: v1
kind: ConfigMap
metadata: { name: mesh-injector }
data: { values: '{"global": ${global}}' }
`,
      rules,
    );
    expect(refs(r)).toEqual([want]);
  });

  it('warns when a matched resource lacks the fields, and does not guess', () => {
    const r = extract(
      `
apiVersion: v1
kind: ConfigMap
metadata: { name: mesh-injector }
data: { values: '{"global": {"hub": "h.io/m"}}' }
`,
      rules,
    );
    expect(refs(r)).toEqual([]);
    expect(r.problems).toEqual([expect.objectContaining({ severity: 'warning', code: 'RULE_UNRESOLVED' })]);
    expect(r.problems[0]!.message).toContain('rules/test.yaml:3');
    expect(r.problems[0]!.message).toContain('lacks the fields of {global.proxy.image} | ');
  });

  it('excludes example blocks (even unparsable ones) and marks knob-less images', () => {
    const r = extract(
      `
apiVersion: v1
kind: ConfigMap
metadata: { name: app-config }
data:
  _example: |-
    # not functional
     odd indentation: |-
        { "image" : "org/old:latest" }
    image: org/older:1
  feature: '{"enabled": false, "jobImage": "org/job:latest"}'
`,
      rules,
    );
    expect(refs(r)).toEqual(['docker.io/org/job:latest']);
    expect(r.findings[0]!.knobless).toEqual({
      rule: 'optional-job',
      description: 'used only when the feature is on; no value sets it',
    });
    expect(r.excluded.map((x) => x.value).sort()).toEqual(['org/old:latest', 'org/older:1']);
    expect(r.excluded.every((x) => x.origin.rule === 'examples' && x.origin.path.startsWith('data._example@L'))).toBe(
      true,
    );
  });

  it('matches resources by chart as well', () => {
    const scoped: RuleSet = {
      rules: parseRuleFile(
        'rules:\n  - id: only-c\n    description: d\n    match: { chart: c }\n    exclude: { value: "a.io/*" }\n',
        'r.yaml',
      ),
    };
    const yaml =
      'apiVersion: v1\nkind: Pod\nmetadata: { name: p }\nspec: { containers: [{ name: a, image: "a.io/x:1" }] }\n';
    expect(refs(extract(yaml, scoped, 'c'))).toEqual([]);
    expect(refs(extract(yaml, scoped, 'other'))).toEqual(['a.io/x:1']);
  });

  it('rejects a bad rule file naming the file, the line and the key', () => {
    expect(() =>
      parseRuleFile('rules:\n  - id: x\n    description: d\n    exclude: { feild: a }\n', 'rules/bad.yaml'),
    ).toThrow(/rules\/bad\.yaml:4: rules\.0\.exclude/);
    expect(() => parseRuleFile('rules:\n  - id: x\n    description: d\n', 'rules/none.yaml')).toThrow(
      /rules\/none\.yaml:2: .*exactly one of exclude, knobless, inject/,
    );
    expect(() => parseRuleFile('rules: [\n', 'rules/syntax.yaml')).toThrow(/rules\/syntax\.yaml:\d+/);
  });
});

describe('image-update automation: fields named image that name a repository to watch (rules/flux.yaml)', () => {
  const automation = `
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImageRepository
metadata: { name: podinfo, namespace: flux-system }
spec: { image: ghcr.io/stefanprodan/podinfo, interval: 5m }
---
apiVersion: image.toolkit.fluxcd.io/v1beta2
kind: ImagePolicy
metadata: { name: podinfo, namespace: flux-system }
spec:
  imageRepositoryRef: { name: podinfo }
  policy: { semver: { range: 5.0.x } }
  filterTags: { pattern: '^main-[a-f0-9]+-(?P<ts>[0-9]+)', extract: '$ts' }
---
apiVersion: argocd-image-updater.argoproj.io/v1alpha1
kind: ImageUpdater
metadata: { name: guestbook }
spec:
  applicationRefs:
    - namePattern: guestbook
      images: [{ alias: web, imageName: "quay.io/org/web:1.0" }]
---
apiVersion: apps/v1
kind: Deployment
metadata: { name: podinfo }
spec: { template: { spec: { containers: [{ name: app, image: "ghcr.io/stefanprodan/podinfo:6.5.0" }] } } }
`;
  it('lists only what a pod pulls, and says which rule left the watched repositories out', async () => {
    const r = extract(automation, await loadRules());
    expect(refs(r)).toEqual(['ghcr.io/stefanprodan/podinfo:6.5.0']);
    expect(r.excluded.find((x) => x.value === 'ghcr.io/stefanprodan/podinfo')?.origin.rule).toBe(
      'flux-image-repository',
    );
    expect(r.excluded.find((x) => x.value === 'quay.io/org/web:1.0')?.origin.rule).toBe('argocd-image-updater');
  });

  it('without the rules the watched repository is taken for an image (what the rule file fixes)', () => {
    expect(refs(extract(automation))).toContain('ghcr.io/stefanprodan/podinfo:latest');
  });
});

describe('images an operator installs (add rules; the shipped knative-operator rule)', () => {
  it('lists Serving for a KnativeServing, minus what the resource overrides or does not install', async () => {
    const rules = await loadRules();
    const r = extract(
      `
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: { name: plain, namespace: knative-serving }
spec: {}
---
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: { name: overridden, namespace: other }
spec:
  version: "1.15"
  ingress: { istio: { enabled: false }, kourier: { enabled: true } }
  registry:
    override:
      activator: "10.61.3.31:35000/knative-releases/knative.dev/serving/cmd/activator@${D}"
---
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: { name: other-version, namespace: x }
spec: { version: "1.14.0" }
---
apiVersion: operator.knative.dev/v1beta1
kind: KnativeServing
metadata: { name: templated, namespace: y }
spec: { registry: { default: "mirror.example.com/knative/\${NAME}:v1.15.2" } }
`,
      rules,
    );
    const byName = (n: string) =>
      r.findings.filter((f) => f.origin.name === n).map((f) => f.reference.replace(/@sha256:.*/, ''));
    expect(byName('plain').sort()).toEqual([
      'gcr.io/knative-releases/knative.dev/net-istio/cmd/controller',
      'gcr.io/knative-releases/knative.dev/net-istio/cmd/webhook',
      'gcr.io/knative-releases/knative.dev/pkg/apiextensions/storageversion/cmd/migrate',
      'gcr.io/knative-releases/knative.dev/serving/cmd/activator',
      'gcr.io/knative-releases/knative.dev/serving/cmd/autoscaler',
      'gcr.io/knative-releases/knative.dev/serving/cmd/autoscaler-hpa',
      'gcr.io/knative-releases/knative.dev/serving/cmd/controller',
      'gcr.io/knative-releases/knative.dev/serving/cmd/queue',
      'gcr.io/knative-releases/knative.dev/serving/cmd/webhook',
    ]);
    const overridden = byName('overridden');
    expect(overridden).toContain('10.61.3.31:35000/knative-releases/knative.dev/serving/cmd/activator');
    expect(overridden).not.toContain('gcr.io/knative-releases/knative.dev/serving/cmd/activator');
    expect(overridden.filter((x) => x.includes('net-istio'))).toEqual([]);
    expect(byName('other-version')).toEqual([]);
    expect(byName('templated')).toEqual([]);
    expect(r.findings.find((f) => f.origin.name === 'plain')!.origin).toMatchObject({
      via: 'rule',
      rule: 'knative-operator-serving-1.15',
    });
  });
});

describe('parsing and key names', () => {
  it('parses documents one by one: a bad one is reported with its line, the others are kept', () => {
    const { documents, problems } = parseManifests(
      [
        '---',
        '# Source: c/templates/a.yaml',
        'kind: ConfigMap',
        'metadata: { name: a }',
        '---',
        '# Source: c/templates/bad.yaml',
        'kind: ConfigMap',
        'data: { a: [ }',
        '---',
        'kind: ConfigMap',
        'metadata:',
        '  name: b',
        "  description: 'multi-line single-quoted",
        "  continuation at the key indentation, which Go accepts'",
        '--- # comment only',
        '# nothing here',
      ].join('\n'),
      'out.yaml',
    );
    expect(documents.map((d) => (d.value as { metadata: { name: string } }).metadata.name)).toEqual(['a', 'b']);
    expect(documents[0]!.template).toBe('c/templates/a.yaml');
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({ file: 'out.yaml', template: 'c/templates/bad.yaml', line: 8 });
  });

  it('keeps timestamps and version-like scalars as Go would, and merges << keys', () => {
    const { documents } = parseManifests(
      'kind: X\nmetadata: { name: n }\nwhen: 2024-01-01\nbase: &b { tag: "1.20" }\nuse: { <<: *b }\n',
    );
    expect(documents[0]!.value).toMatchObject({ when: '2024-01-01', use: { tag: '1.20' } });
  });

  it.each([
    ['queue-sidecar-image', ['queue', 'sidecar', 'image']],
    ['defaultJobImage', ['default', 'job', 'image']],
    ['RELATED_IMAGE_X', ['related', 'image', 'x']],
    ['imagePullPolicy', ['image', 'pull', 'policy']],
    ['containerImageURI', ['container', 'image', 'uri']],
    ['sidecar.istio.io/proxyImage', ['sidecar', 'istio', 'io', 'proxy', 'image']],
  ])('key words of %s', (key, words) => {
    expect(keyWords(key)).toEqual(words);
  });

  it.each([
    ['image', true],
    ['queue-sidecar-image', true],
    ['imageRef', true],
    ['containerImageURI', true],
    ['image_name', true],
    ['imagePullPolicy', false],
    ['imagePullSecretName', false],
    ['images', false],
    ['imageTag', false],
  ])('%s names an image: %s', (key, yes) => {
    expect(isImageKey(key)).toBe(yes);
  });
});
