import type { EventEmitter } from 'node:events';
import { delay } from './tools';
import { installTranslation } from './i18n';

/**
 * node-red-node-test-helper, typed for the parts the node tests use (it ships no types), and the small
 * waits and spies those tests share. Importing this module initialises the helper with the installed
 * Node-RED runtime.
 */

export interface SpyCall {
  thisValue: unknown;
  args: unknown[];
}

export interface TestNode extends EventEmitter {
  id: string;
  receive(msg: Record<string, unknown>): void;
}

/** What Node-RED's log receives from node.log/warn/error/debug (helper.log() spies on it). */
export interface LogEvent {
  level: number;
  id?: string;
  type?: string;
  msg: unknown;
}

export interface TestHelper {
  init(runtimePath: string, settings?: Record<string, unknown>): void;
  settings(settings: Record<string, unknown>): Record<string, unknown>;
  load(nodes: unknown, flow: Array<Record<string, unknown>>): Promise<void>;
  setFlows(flow: Array<Record<string, unknown>>, type?: string): Promise<void>;
  unload(): Promise<void>;
  getNode(id: string): TestNode;
  log(): { getCalls(): SpyCall[]; WARN: number; ERROR: number; INFO: number; DEBUG: number };
  _NodePrototype: { status: { getCalls(): SpyCall[] }; error: { getCalls(): SpyCall[] }; warn: { getCalls(): SpyCall[] } };
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const helper = require('node-red-node-test-helper') as TestHelper;
helper.init(require.resolve('node-red'));
// Nodes' status texts come from their message catalogues, translated as the real runtime does.
installTranslation(helper as unknown as Parameters<typeof installTranslation>[0]);

/** The arguments of every call of node.status/error/warn made by this node since the flow was loaded. */
export function callsOn(method: 'status' | 'error' | 'warn', node: TestNode): unknown[][] {
  return helper._NodePrototype[method].getCalls().filter((c) => c.thisValue === node).map((c) => c.args);
}

export function statusTexts(node: TestNode): string[] {
  return callsOn('status', node).map((args) => String((args[0] as { text?: string } | undefined)?.text ?? ''));
}

/** Everything this node logged (any level: debug, info, warn, error), as Node-RED's log received it. */
export function logOf(node: TestNode): Array<{ level: number; message: string }> {
  return helper
    .log()
    .getCalls()
    .map((c) => c.args[0] as LogEvent)
    .filter((e) => e && e.id === node.id)
    .map((e) => ({ level: e.level, message: typeof e.msg === 'string' ? e.msg : String((e.msg as Error | undefined)?.message ?? e.msg) }));
}

/**
 * Polls `check` until it returns something other than undefined, or fails after `timeoutMs`. `what` may be
 * a function so that the failure describes the state at the deadline (e.g. the statuses seen so far), not
 * the state when the wait began.
 */
export async function waitFor<T>(check: () => T | undefined, timeoutMs: number, what: string | (() => string)): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await delay(25);
  }
}

/** Every msg a (helper) node receives from now on. */
export function collectMessages<T>(node: TestNode): T[] {
  const msgs: T[] = [];
  node.on('input', (msg: T) => msgs.push(msg));
  return msgs;
}

/** The port a clara-dicom-in node reports in its status ("listening :PORT …"), e.g. after listening on port 0. */
export async function listeningPort(node: TestNode, timeoutMs = 10000): Promise<number> {
  const text = await waitFor(() => statusTexts(node).find((t) => /listening :\d+/.test(t)), timeoutMs, () => `the node to listen; status: ${statusTexts(node).join(' | ')}`);
  return Number(/listening :(\d+)/.exec(text)![1]);
}
