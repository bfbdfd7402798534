/**
 * A local serverless plugin that builds the layers (layers/build.ts) right before the
 * framework zips them, for the architecture the service resolved (`provider.architecture`,
 * from the `architecture` parameter). Hooked on packaging only, so `sls package` and
 * `sls deploy` always ship fresh layers, while `sls print` and `sls invoke local` stay fast.
 *
 * It also lets `sls package` run with no AWS credentials: after compiling each layer the
 * framework asks CloudFormation for the deployed stack's layer hash (to skip re-uploading an
 * unchanged layer), and without credentials that lookup aborts the whole package. Only that
 * error is absorbed (the template is complete without the lookup); with credentials the
 * lookup runs as before.
 *
 * This file is plain CommonJS because the framework loads plugins with `require`; the
 * build itself is TypeScript, loaded through tsx's CommonJS API.
 */
class LayerBuildPlugin {
  constructor(serverless, _options, { log } = {}) {
    this.serverless = serverless;
    this.log = log;
    this.hooks = {
      'before:package:createDeploymentArtifacts': () => this.build(),
      'before:package:compileLayers': () => this.allowOfflineLayerCompile(),
    };
  }

  allowOfflineLayerCompile() {
    const compiler = this.serverless.pluginManager.plugins.find((plugin) => plugin.constructor.name === 'AwsCompileLayers');
    if (!compiler || typeof compiler.compareWithLastLayer !== 'function') return;
    const compare = compiler.compareWithLastLayer.bind(compiler);
    let told = false;
    compiler.compareWithLastLayer = async (layerName) => {
      try {
        return await compare(layerName);
      } catch (error) {
        if (error && error.code === 'AWS_CREDENTIALS_NOT_FOUND') {
          if (!told) this.log?.notice('no AWS credentials: layers packaged without comparing them to a deployed stack');
          told = true;
          return undefined;
        }
        throw error;
      }
    };
  }

  build() {
    const { register } = require('tsx/cjs/api');
    const api = register({ namespace: 'layer-build' });
    try {
      const { buildLayers } = api.require('./build.ts', __filename);
      const architecture = this.serverless.service.provider.architecture || 'x86_64';
      const started = Date.now();
      const root = this.serverless.serviceDir;
      const names = this.serverless.service.getAllLayers();
      for (const layer of buildLayers(root, architecture, names)) {
        this.log?.verbose(`layer ${layer.name}: ${(layer.bytes / 1e6).toFixed(1)} MB, ${layer.files} files`);
      }
      this.log?.notice(`layers built for ${architecture} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
    } catch (error) {
      throw new this.serverless.classes.Error(`layer build failed: ${error.message}`);
    } finally {
      api.unregister();
    }
  }
}

module.exports = LayerBuildPlugin;
