// A small chart whose images are list items (`containers: [{ name, image, port }]`), the shape
// knob inference follows through lists: its values path is `containers[0].image`.
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/** A Deployment with one container per item of `.Values.containers` (name, image, optional port). */
export const CONTAINERS_TEMPLATE = `apiVersion: apps/v1
kind: Deployment
metadata: { name: {{ .Release.Name }} }
spec:
  selector: { matchLabels: { app: web } }
  template:
    metadata: { labels: { app: web } }
    spec:
      containers:
        {{- range .Values.containers }}
        - name: {{ .name }}
          image: {{ .image | quote }}
          {{- with .port }}
          ports: [{ containerPort: {{ . }} }]
          {{- end }}
        {{- end }}
`;

export const LIST_CHART_DIGEST = `sha256:${'a'.repeat(64)}`;

/** The images of writeListChart, as its values ship them. */
export const LIST_CHART_IMAGES = ['docker.io/acme/webapp:2.1', `quay.io/acme/proxy:v3@${LIST_CHART_DIGEST}`];

/** Chart `webapp` at `version` in `dir`: two containers in a list, one with a port, one by digest. */
export async function writeListChart(dir: string, version: string): Promise<string> {
  await mkdir(join(dir, 'templates'), { recursive: true });
  await writeFile(join(dir, 'Chart.yaml'), `apiVersion: v2\nname: webapp\nversion: ${version}\n`);
  await writeFile(
    join(dir, 'values.yaml'),
    `containers:\n  - name: app\n    image: ${LIST_CHART_IMAGES[0]}\n    port: 8080\n  - name: sidecar\n    image: "${LIST_CHART_IMAGES[1]}"\n`,
  );
  await writeFile(join(dir, 'templates', 'deployment.yaml'), CONTAINERS_TEMPLATE);
  return dir;
}
