/**
 * Which Node-RED the tests run against, chosen in this one place. Without CLARA_NODE_RED_HOME: the
 * devDependency in node_modules. With CLARA_NODE_RED_HOME=<npm prefix> (e.g. .tmp/nr5, where .ci/node-red-5
 * installs Node-RED 5): every `node-red`, `node-red/…` and `@node-red/…` require resolves in that prefix's
 * node_modules first: node-red-node-test-helper's runtime, red.js as the headless tests spawn it, the core
 * nodes the tests load (catch, tls), and the CLI's embedded runtime.
 *
 * Node looks in the nearest node_modules before NODE_PATH, so NODE_PATH cannot pick another install while
 * node_modules holds node-red; hence this resolver hook. It is loaded with NODE_OPTIONS=--require so that
 * mocha and every child process the tests start (red.js, the clara-dicom CLI) make the same choice.
 */
import Module from 'node:module';

const NODE_RED_REQUEST = /^(?:node-red|@node-red\/[^/]+)(?:\/|$)/;

type ResolveFilename = (request: string, parent: unknown, isMain: boolean, options?: { paths?: string[] }) => string;

const home = process.env.CLARA_NODE_RED_HOME;
if (home) {
  const loader = Module as unknown as { _resolveFilename: ResolveFilename };
  const resolveFilename = loader._resolveFilename;
  loader._resolveFilename = function (this: unknown, request, parent, isMain, options) {
    return resolveFilename.call(this, request, parent, isMain, NODE_RED_REQUEST.test(request) ? { paths: [home] } : options);
  };
}
