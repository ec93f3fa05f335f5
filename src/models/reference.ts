// The name a model image goes by before it reaches a site: `sealift.invalid/models/<name>:<tag>`.
// sealift builds these images itself, so there is no upstream registry; `.invalid` (RFC 2606)
// can never resolve, and the registry's naming scheme maps the name into the site registry like
// any other (host-swap: REG/models/<name>:<tag>; scoped: REG/sealift.invalid/models/<name>:<tag>).
export const MODEL_IMAGE_HOST = 'sealift.invalid';

export interface ModelName {
  name: string;
  tag: string;
}

export function modelImageReference(model: ModelName): string {
  return `${MODEL_IMAGE_HOST}/models/${model.name}:${model.tag}`;
}
