import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort } from '../../lib/dimse/ports';
import { delay } from './tools';

/**
 * The package root: Node-RED loads it as the installed module node-red-contrib-clara-dicom (catalogues, examples).
 * CLARA_TEST_PACKAGE_ROOT points it at another folder laid out like the package (its package.json, dist/ a link
 * to a private BUILD_DIR build), so that a private build's headless tests run its own nodes, not dist/'s.
 */
export const PACKAGE_ROOT = process.env.CLARA_TEST_PACKAGE_ROOT || join(__dirname, '..', '..', '..');

export interface HeadlessUser {
  username: string;
  password: string;
  permissions: string;
}

export interface HeadlessRed {
  /** http://127.0.0.1:<port> of the editor and admin API. */
  url: string;
  /** Everything Node-RED printed so far. */
  log(): string;
  /** An admin API access token (adminAuth users only). */
  token(username: string, password: string, scope: string): Promise<string>;
  stop(): Promise<void>;
  /** The red.js process id (its memory can be read from /proc). */
  pid: number;
  /** kill -9: the process dies at once, as in a crash or a power cut of the process. */
  kill(): Promise<void>;
}

/**
 * A user directory for red.js: `flow` as flows.json and a settings.js for 127.0.0.1:`uiPort`, loading the nodes
 * in `nodesDir`, with no editor prompts. With `users`, the admin API is locked by adminAuth. Returns settings.js.
 */
export function writeHeadlessUserDir(userDir: string, flow: unknown[], uiPort: number, nodesDir: string[], users?: HeadlessUser[]): string {
  mkdirSync(userDir, { recursive: true });
  writeFileSync(join(userDir, 'flows.json'), JSON.stringify(flow));
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const bcrypt = require('bcryptjs') as { hashSync(text: string, rounds: number): string };
  const settings = {
    uiHost: '127.0.0.1',
    uiPort,
    userDir,
    flowFile: 'flows.json',
    credentialSecret: false,
    nodesDir,
    adminAuth: users ? { type: 'credentials', users: users.map((u) => ({ username: u.username, password: bcrypt.hashSync(u.password, 8), permissions: u.permissions })) } : undefined,
    logging: { console: { level: 'info' } },
    // No update-check prompt over the editor, no tours: the tests drive the editor without them.
    diagnostics: { enabled: false, ui: false },
    telemetry: { enabled: false },
    editorTheme: { projects: { enabled: false }, tours: false },
  };
  const settingsFile = join(userDir, 'settings.js');
  writeFileSync(settingsFile, `module.exports = ${JSON.stringify(settings, null, 2)};\n`);
  return settingsFile;
}

/**
 * Starts Node-RED's own red.js in a child process, on 127.0.0.1, with this package loaded as a module and
 * `flow` as its flows file: the runtime a user runs, not the test helper's stand-in. With `users`, the
 * admin API is locked by adminAuth.
 */
export async function startHeadlessRed(userDir: string, flow: unknown[], options: { users?: HeadlessUser[]; env?: NodeJS.ProcessEnv } = {}): Promise<HeadlessRed> {
  const uiPort = await freeLoopbackPort();
  const settingsFile = writeHeadlessUserDir(userDir, flow, uiPort, [PACKAGE_ROOT], options.users);
  let output = '';
  const child: ChildProcess = spawn(process.execPath, [require.resolve('node-red/red.js'), '--settings', settingsFile, '--userDir', userDir], {
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const deadline = Date.now() + 60000;
  while (!/Started flows/.test(output)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`Node-RED did not start:\n${output}`);
    }
    await delay(200);
  }
  const url = `http://127.0.0.1:${uiPort}`;
  return {
    url,
    log: () => output,
    async token(username, password, scope) {
      const res = await fetch(`${url}/auth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ client_id: 'node-red-admin', grant_type: 'password', scope, username, password }),
      });
      if (res.status !== 200) throw new Error(`login of ${username} answered ${res.status}`);
      return ((await res.json()) as { access_token: string }).access_token;
    },
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGINT');
      await new Promise((resolve) => child.once('exit', resolve));
    },
    pid: child.pid!,
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
  };
}
