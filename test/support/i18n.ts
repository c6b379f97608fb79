import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * node-red-node-test-helper hands nodes a RED whose `_` answers the key it is given, so a node's status
 * would read "clara-dicom-in.status.listening" in tests. This gives the nodes Node-RED's own i18n
 * (@node-red/util, i18next) with this package's en-US catalogues instead, the way the real runtime
 * does: each node's catalogue is its own namespace, and RED._ looks a key up in the namespace of the
 * node that asked. Tests then see the text a user sees, with its parameters filled in.
 */

interface I18n {
  init(settings: Record<string, unknown>): void;
  registerMessageCatalog(namespace: string, dir: string, file: string): Promise<void>;
  _(key: string, params?: Record<string, unknown>): string;
}

interface RegistryUtil {
  createNodeApi(node: unknown): Record<string, unknown>;
}

/** The compiled nodes beside this file's build: <build>/nodes/<type>/locales/en-US/<type>.json. */
export const BUILT_NODES_DIR = join(__dirname, '..', '..', 'nodes');

/** Node types with a message catalogue in the build. */
export function catalogueTypes(): string[] {
  if (!existsSync(BUILT_NODES_DIR)) return [];
  return readdirSync(BUILT_NODES_DIR).filter((type) => existsSync(join(BUILT_NODES_DIR, type, 'locales', 'en-US', `${type}.json`)));
}

const nodeRedDir = join(require.resolve('node-red'), '..');
// The same module instances the runtime under test uses (the helper loads them from node-red's tree).
const i18n = require(require.resolve('@node-red/util/lib/i18n', { paths: [nodeRedDir] })) as I18n;
const registryUtil = require(require.resolve('@node-red/registry/lib/util', { paths: [nodeRedDir] })) as RegistryUtil;

i18n.init({});
const cataloguesLoaded: Promise<unknown> = Promise.all(
  catalogueTypes().map((type) => i18n.registerMessageCatalog(type, join(BUILT_NODES_DIR, type, 'locales'), `${type}.json`)),
);

/** A key "<type>.…" is looked up in the catalogue of <type>, as the runtime looks it up in the asking node's. */
function translate(key: string, params?: Record<string, unknown>): string {
  if (key.includes(':')) return i18n._(key, params);
  const namespace = key.split('.')[0];
  return i18n._(`${namespace}:${key}`, params);
}

/**
 * Makes the test helper's RED translate. The helper builds its RED with createNodeApi and then sets
 * `red._` to the identity; the property made here keeps the translation and ignores that assignment.
 */
export function installTranslation(helper: { load: (...args: unknown[]) => Promise<void> }): void {
  const create = registryUtil.createNodeApi;
  registryUtil.createNodeApi = (node: unknown) => {
    const red = create(node);
    Object.defineProperty(red, '_', { get: () => translate, set: () => undefined, configurable: true, enumerable: true });
    return red;
  };
  const load = helper.load;
  helper.load = async (...args: unknown[]) => {
    await cataloguesLoaded;
    return load.apply(helper, args);
  };
}
