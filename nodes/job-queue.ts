import type { Node, NodeAPI, NodeMessageInFlow } from 'node-red';
import { type OffloadedFunction, prepareOffThread } from '../lib/offload';
import { type Translate, errorStatus, statusAtDeploy } from './status-text';

export type SendFunction = (msg: NodeMessageInFlow | Array<NodeMessageInFlow | null>) => void;

export interface JobQueueOptions {
  /** The node type, which prefixes every error so a catch node and the log say who failed. */
  type: string;
  /** RED._ of the node's module: the queue's status is "<type>.status.queued" in the node's catalogue. */
  translate: Translate;
  /** Handles one message; a thrown error's message is the reason shown ("job <id>: <reason>"). */
  work: (msg: NodeMessageInFlow, send: SendFunction) => Promise<void> | void;
  /** At close, before waiting for the job in hand: stop it (abort a signal, set a flag). */
  stopping?: () => void;
  /** At close, once the queue is empty: release what the node holds. */
  stopped?: () => Promise<void> | void;
}

/**
 * The job nodes' input and close handling, in one place: messages are worked one at a time in arrival
 * order (each job holds volumes in memory, and the work keeps the cores busy anyway), the status says how
 * many wait, a failure goes to done(err) (so a catch node gets the msg) with the reason in a red status,
 * and close waits for the job in hand. Returns whether a job is running, for nodes that show other status
 * (server health) only when idle.
 */
export function workJobsInOrder(node: Node, options: JobQueueOptions): { busy(): boolean } {
  let busy = false;
  let waiting = 0;
  let queue: Promise<void> = Promise.resolve();
  node.on('input', (msg: NodeMessageInFlow, send: SendFunction, done: (err?: Error) => void) => {
    waiting++;
    if (busy) node.status({ fill: 'blue', shape: 'ring', text: options.translate(`${options.type}.status.queued`, { count: waiting - 1 }) });
    queue = queue.then(async () => {
      waiting--;
      busy = true;
      try {
        await options.work(msg, send);
        done();
      } catch (err) {
        const message = (err as Error).message;
        // The status has room for the reason only; the log and the catch node get the job id too,
        // and the stack goes to the log at debug level only.
        node.status(errorStatus(message.replace(/^job \S+: /, '')));
        if ((err as Error).stack) node.debug((err as Error).stack);
        done(new Error(`${options.type}: ${message}`));
      } finally {
        busy = false;
      }
    });
  });
  node.on('close', (_removed: boolean, done: () => void) => {
    options.stopping?.();
    queue
      .then(() => options.stopped?.())
      .finally(() => {
        node.status({});
        done();
      });
  });
  return { busy: () => busy };
}

/**
 * A node's settings, checked when the flow is deployed rather than on the first study: the settings, or
 * the reason they are refused, which goes to the log and a red status. The node then fails every msg with it.
 */
/**
 * Prepares a stage thread (lib/offload) a moment after the node is deployed: after Node-RED's start-up,
 * which it would otherwise slow, and before the first study reaches the node.
 */
export function prepareStageThreadSoon(node: Node, name: OffloadedFunction): void {
  const timer = setTimeout(() => prepareOffThread(name), STAGE_THREAD_DELAY_MS);
  timer.unref();
  node.on('close', () => clearTimeout(timer));
}

const STAGE_THREAD_DELAY_MS = 1000;

export function settingsAtDeploy<T>(RED: NodeAPI, node: Node, type: string, read: () => T): { settings?: T; configError?: string } {
  try {
    return { settings: read() };
  } catch (err) {
    const configError = (err as Error).message;
    node.error(`${type}: ${configError}`);
    statusAtDeploy(RED, node, errorStatus(configError));
    return { configError };
  }
}
