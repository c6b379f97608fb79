// Compiles the TypeScript sources into dist/ and lays out the Node-RED assets next to the
// compiled node files, because Node-RED looks for <node>.html, locales/ and icons/ beside each .js.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, rmSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(import.meta.url);
// BUILD_DIR lets parallel work build side by side; CLARA_BUILD_LENIENT keeps going past type errors
// elsewhere in the tree (tsc still emits), for local iteration only: npm test stays strict.
const dist = join(root, process.env.BUILD_DIR || 'dist');

rmSync(dist, { recursive: true, force: true });
try {
  execFileSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', join(root, 'tsconfig.json'), '--outDir', dist], { stdio: 'inherit' });
} catch (err) {
  if (!process.env.CLARA_BUILD_LENIENT) process.exit(1);
}

const nodesDir = join(root, 'nodes');
for (const type of readdirSync(nodesDir)) {
  const src = join(nodesDir, type);
  // Files beside the node folders are shared runtime code (compiled by tsc), not nodes.
  if (!statSync(src).isDirectory()) continue;
  const out = join(dist, 'nodes', type);
  mkdirSync(out, { recursive: true });
  cpSync(src, out, { recursive: true, filter: (p) => !p.endsWith('.ts') });
  if (existsSync(join(root, 'icons'))) cpSync(join(root, 'icons'), join(out, 'icons'), { recursive: true });
}
execFileSync(process.execPath, [join(root, 'scripts', 'gen-dictionary.mjs'), join(dist, 'lib', 'dicom', 'dictionary.json')], { stdio: 'inherit' });

// The importer's editor plugin sits beside its runtime half, where Node-RED looks for a plugin's .html.
const flowsDir = join(root, 'flows');
if (existsSync(flowsDir)) {
  mkdirSync(join(dist, 'flows'), { recursive: true });
  for (const file of readdirSync(flowsDir)) if (file.endsWith('.html')) cpSync(join(flowsDir, file), join(dist, 'flows', file));
}

// Protocol definitions the runtime loads (the KServe v2 gRPC service) sit beside their compiled modules.
const libDir = join(root, 'lib');
cpSync(libDir, join(dist, 'lib'), { recursive: true, filter: (p) => statSync(p).isDirectory() || p.endsWith('.proto') });
