// The OCI stack: the only HTTP in sealift.
export * from './types.ts';
export { VerifyStream, ShortBodyError } from './verify.ts';
export { dockerCredentials, staticCredentials, type Credential, type CredentialLookup } from './credentials.ts';
export {
  RegistryClient,
  RegistryPool,
  closeRegistryConnections,
  isTemporaryNetworkError,
  parseChallenge,
  registryEndpointHost,
  type RegistryHostConfig,
  type RegistryOptions,
  type RetryPolicy,
} from './registry.ts';
export { OciLayout, ANNOTATION_REF_NAME, ANNOTATION_SOURCE } from './layout.ts';
export {
  copyImage,
  createCopySession,
  reducedIndex,
  type CopyOptions,
  type CopyResult,
  type CopySession,
  type ImageSource,
  type ImageTarget,
  type PushManifestOptions,
} from './copy.ts';
export { layoutSource, layoutTarget, registrySource, registryTarget } from './stores.ts';
export { fetchFile, fetchText, type DownloadOptions, type FetchedFile, type FetchedText } from './http.ts';
