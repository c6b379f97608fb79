import { copyFileSync, existsSync, mkdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository: the benchmarks run from <repo>/<build dir>/bench. */
export const REPO_ROOT = resolve(__dirname, '..', '..');
/** This build (dist/ for `npm run bench`, or a private BUILD_DIR). */
export const BUILD_DIR = resolve(__dirname, '..');

/**
 * A folder Node-RED can load as this package: the repository itself when this is the dist/ build its
 * package.json names, otherwise a scratch folder laid out like the package whose dist/ is this build (the
 * layout CLARA_TEST_PACKAGE_ROOT expects), so a private build's benchmarks run its own nodes.
 */
export function packageRootForThisBuild(): { root: string; cleanup(): void } {
  if (BUILD_DIR === join(REPO_ROOT, 'dist')) return { root: REPO_ROOT, cleanup: () => undefined };
  const root = join(tmpdir(), `clara-bench-pkg-${process.pid}`);
  rmSync(root, { recursive: true, force: true });
  mkdirSync(root, { recursive: true });
  copyFileSync(join(REPO_ROOT, 'package.json'), join(root, 'package.json'));
  symlinkSync(BUILD_DIR, join(root, 'dist'));
  for (const name of ['examples', 'icons', 'models']) if (existsSync(join(REPO_ROOT, name))) symlinkSync(join(REPO_ROOT, name), join(root, name));
  return { root, cleanup: () => rmSync(root, { recursive: true, force: true }) };
}
