/** `--model`: the resolver the API uses too (src/node/model-resolve.ts), with `--model` in its errors. */
export { packageRoot } from '../node/package-root.js';
export { DEFAULT_MODEL_NAME, resolveModelDir, shippedModelNames } from '../node/model-resolve.js';
