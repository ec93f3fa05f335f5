// Models as images: the environment's `models:` packaged in KServe's modelcar form by sealift
// itself (no registry, no docker), with a deterministic digest. bundle builds them into its
// layout; generate names them in the InferenceService's storageUri.
export { buildModelImage, type BuildModelOptions, type ModelImage, type ModelSpec } from './image.ts';
export { MODEL_IMAGE_HOST, modelImageReference } from './reference.ts';
export { findModelShell } from './shell.ts';
