// The OCI stack: the only HTTP in sealift.
export * from './types.ts';
export { VerifyStream, ShortBodyError } from './verify.ts';
export { dockerCredentials, staticCredentials, type Credential, type CredentialLookup } from './credentials.ts';
export {
  RegistryClient,
  RegistryPool,
  closeRegistryConnections,
  registryEndpointHost,
  type RegistryHostConfig,
  type RegistryOptions,
} from './registry.ts';
export { parseChallenge } from './auth.ts';
export {
  DEFAULT_RETRY,
  isTemporaryNetworkError,
  worstCaseBackoffMs,
  type NetworkFault,
  type RetryPolicy,
} from './transport.ts';
export { DEFAULT_UPLOAD, type UploadSettings } from './upload.ts';
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
