// Models as images: the environment's `models:` packaged in KServe's modelcar form by sealift
// itself (no registry, no docker), with a deterministic digest. bundle builds them into its
// layout; generate names them in the InferenceService's storageUri. The same layer writer, JSON
// blob writer and ELF reader build the sealift image itself (src/container-image).
export { buildModelImage, putJson, type BuildModelOptions, type ModelImage, type ModelSpec } from './image.ts';
export { readElfLinking, type ElfLinking } from './elf.ts';
export { writeLayer, type LayerEntry, type WrittenLayer } from './layer.ts';
export { MODEL_IMAGE_HOST, modelImageReference } from './reference.ts';
export { findModelShell } from './shell.ts';
