/**
 * The main thread's side of ort-worker.ts: onnxruntime sessions opened and run in that one worker thread,
 * so that inference never holds the event loop. Input tensors are copied once and transferred; outputs
 * come back by structured clone.
 */
import { join } from 'node:path';
import { RequestWorker } from '../offload/request-worker';

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

export interface WorkerOutput {
  name: string;
  type: string;
  dims: number[];
  data: ArrayBufferView;
}

export interface OpenedSession {
  session: number;
  inputNames: string[];
  outputNames: string[];
  inputMetadata: unknown[];
  outputMetadata: unknown[];
}

export type OrtRequest =
  | { op: 'open'; file: string; options: SessionOpenOptions }
  | { op: 'run'; session: number; feeds: WorkerTensor[]; outputs: string[] }
  | { op: 'close'; session: number };

export type OrtAnswer = OpenedSession | WorkerOutput[] | null;

export interface WorkerSession extends Omit<OpenedSession, 'session'> {
  run(feeds: WorkerTensor[], outputs: string[]): Promise<WorkerOutput[]>;
  release(): Promise<void>;
}

/** The process's one inference thread (see ort-worker.ts for why one). */
const inferenceThread = new RequestWorker<OrtRequest, OrtAnswer>(join(__dirname, 'ort-worker.js'), 'inference');

/** Opens an onnxruntime session on `file` in the inference thread. */
export async function openWorkerSession(file: string, options: SessionOpenOptions): Promise<WorkerSession> {
  const { session, ...described } = (await inferenceThread.request({ op: 'open', file, options })) as OpenedSession;
  return {
    ...described,
    async run(feeds, outputs) {
      // A copy the thread can own: the caller's arrays are often views on buffers it goes on using.
      const copies = feeds.map((t) => ({ ...t, data: copyOf(t.data) }));
      return (await inferenceThread.request({ op: 'run', session, feeds: copies, outputs }, copies.map((t) => t.data.buffer as ArrayBuffer))) as WorkerOutput[];
    },
    async release() {
      await inferenceThread.request({ op: 'close', session });
    },
  };
}

function copyOf(data: ArrayBufferView): ArrayBufferView {
  const bytes = new Uint8Array(data.byteLength);
  bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  const Kind = data.constructor as new (buffer: ArrayBuffer) => ArrayBufferView;
  return new Kind(bytes.buffer);
}
