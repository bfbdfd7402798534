/**
 * `${file(./layers/model-version.js):version}` in serverless.yml: the model version the model
 * layer is built from (the registry's current, see functions/lib/model-registry-file.ts), so
 * the layer's description names it and a promote followed by `npm run deploy` publishes a new
 * layer version. Plain CommonJS because the framework loads it with `require`; the registry
 * reader is TypeScript, loaded through tsx's CommonJS API.
 */
const { join } = require('node:path');

module.exports = () => {
  const { register } = require('tsx/cjs/api');
  const api = register({ namespace: 'model-version' });
  try {
    const { registryState } = api.require('../functions/lib/model-registry-file.ts', __filename);
    const { current } = registryState(join(__dirname, '..', 'models'));
    if (current === undefined) throw new Error('models/model-card.json is missing or unreadable: no model to ship');
    return { version: current };
  } finally {
    api.unregister();
  }
};
