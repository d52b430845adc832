/**
 * PyTorch golden outputs for HF GPT-2 / Llama and our module format (copied from the project's shared fixtures
 * into the repository, so `npm test` needs nothing outside the clone).
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const fixturesDir = join(dirname(fileURLToPath(import.meta.url)), '..', 'fixtures');
