/**
 * The main thread's side of ort-worker.ts: onnxruntime sessions opened and run in that one worker thread,
 * so that inference never holds the event loop. Input tensors are copied once and transferred; outputs
 * come back by structured clone.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';

export interface SessionOpenOptions {
  intraOpNumThreads: number;
  interOpNumThreads: number;
  executionProviders: string[];
}

export interface WorkerTensor {
  name: string;
  /** onnxruntime's type name: float32, int64, … */
  type: string;
  data: ArrayBufferView;
  shape: number[];
}

export type WorkerRequest =
  | { op: 'open'; id: number; file: string; options: SessionOpenOptions }
  | { op: 'run'; id: number; session: number; feeds: WorkerTensor[]; outputs: string[] }
  | { op: 'close'; id: number; session: number };

export type WorkerReply =
  | { id: number; ok: false; error: string }
  | { id: number; ok: true; session: number; inputNames: string[]; outputNames: string[]; inputMetadata: unknown[]; outputMetadata: unknown[] }
  | { id: number; ok: true; outputs: Array<{ name: string; type: string; dims: number[]; data: ArrayBufferView }> }
  | { id: number; ok: true };

export interface WorkerSession {
  inputNames: string[];
  outputNames: string[];
  inputMetadata: unknown[];
  outputMetadata: unknown[];
  run(feeds: WorkerTensor[], outputs: string[]): Promise<Array<{ name: string; type: string; dims: number[]; data: ArrayBufferView }>>;
  release(): Promise<void>;
}

type Pending = { resolve: (reply: WorkerReply) => void; reject: (err: Error) => void };

let worker: Worker | undefined;
const pending = new Map<number, Pending>();
let nextRequest = 1;

/** The process's one inference worker, started on first use; it keeps the process alive only while a request is out. */
function inferenceWorker(): Worker {
  if (worker) return worker;
  const started = new Worker(join(__dirname, 'ort-worker.js'));
  started.unref();
  started.on('message', (reply: WorkerReply) => {
    const waiting = pending.get(reply.id);
    if (!waiting) return;
    pending.delete(reply.id);
    if (pending.size === 0) started.unref();
    waiting.resolve(reply);
  });
  const fail = (err: Error) => {
    if (worker === started) worker = undefined;
    for (const [id, waiting] of pending) {
      pending.delete(id);
      waiting.reject(new Error(`the inference worker stopped: ${err.message}`));
    }
  };
  started.on('error', fail);
  started.on('exit', (code) => fail(new Error(`exit code ${code}`)));
  worker = started;
  return started;
}

/** Distributes Omit over the request union, so each kind keeps its own fields. */
type RequestBody = WorkerRequest extends infer R ? (R extends WorkerRequest ? Omit<R, 'id'> : never) : never;

function request(body: RequestBody, transfer: ArrayBuffer[] = []): Promise<WorkerReply> {
  const target = inferenceWorker();
  const id = nextRequest++;
  return new Promise<WorkerReply>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    target.ref();
    target.postMessage({ ...body, id } as WorkerRequest, transfer);
  }).then((reply) => {
    if (!reply.ok) throw new Error(reply.error);
    return reply;
  });
}

/** Opens an onnxruntime session on `file` in the inference worker. */
export async function openWorkerSession(file: string, options: SessionOpenOptions): Promise<WorkerSession> {
  const opened = await request({ op: 'open', file, options });
  if (!('session' in opened)) throw new Error('the inference worker answered an open without a session');
  const session = opened.session;
  return {
    inputNames: opened.inputNames,
    outputNames: opened.outputNames,
    inputMetadata: opened.inputMetadata,
    outputMetadata: opened.outputMetadata,
    async run(feeds, outputs) {
      // A copy the worker can own: the caller's arrays are often views on buffers it goes on using.
      const copies = feeds.map((t) => ({ ...t, data: copyOf(t.data) }));
      const reply = await request({ op: 'run', session, feeds: copies, outputs }, copies.map((t) => t.data.buffer as ArrayBuffer));
      if (!('outputs' in reply)) throw new Error('the inference worker answered a run without outputs');
      return reply.outputs;
    },
    async release() {
      await request({ op: 'close', session });
    },
  };
}

function copyOf(data: ArrayBufferView): ArrayBufferView {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const Kind = data.constructor as new (buffer: ArrayBuffer) => ArrayBufferView;
  return new Kind(bytes.buffer);
}
