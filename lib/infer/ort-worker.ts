/**
 * The worker thread that owns every embedded onnxruntime session of the process.
 *
 * onnxruntime-node's `run` is synchronous native code behind a Promise: on the main thread it would hold
 * Node-RED's event loop for the whole of each batch (a second and more on a small box), and no C-STORE,
 * send, editor request or other flow would be served meanwhile. Here it holds only this thread.
 * One thread serves all sessions, for the life of the process: onnxruntime's native binding is loaded
 * once, and is never loaded into two threads at once.
 */
import type { InferenceSession, Tensor } from 'onnxruntime-node';
import { serveRequests } from '../offload/request-worker';
import type { OrtAnswer, OrtRequest } from './ort-host';

// eslint-disable-next-line @typescript-eslint/no-require-imports
const ort = require('onnxruntime-node') as typeof import('onnxruntime-node');
const sessions = new Map<number, InferenceSession>();
let nextSession = 1;

async function answer(request: OrtRequest): Promise<OrtAnswer> {
  switch (request.op) {
    case 'open': {
      const session = await ort.InferenceSession.create(request.file, request.options);
      const id = nextSession++;
      sessions.set(id, session);
      const described = session as unknown as { inputMetadata?: readonly unknown[]; outputMetadata?: readonly unknown[] };
      return {
        session: id,
        inputNames: [...session.inputNames],
        outputNames: [...session.outputNames],
        // Plain data only: the metadata objects cross the thread boundary by structured clone.
        inputMetadata: JSON.parse(JSON.stringify(described.inputMetadata ?? [])) as unknown[],
        outputMetadata: JSON.parse(JSON.stringify(described.outputMetadata ?? [])) as unknown[],
      };
    }
    case 'run': {
      const session = sessions.get(request.session);
      if (!session) throw new Error(`session ${request.session} is closed`);
      const feeds: Record<string, Tensor> = {};
      for (const t of request.feeds) feeds[t.name] = new ort.Tensor(t.type as 'float32', t.data as Float32Array, t.shape);
      const results = await session.run(feeds);
      // Cloned, not transferred: the outputs' memory may be onnxruntime's own, which cannot be handed over.
      return request.outputs.map((name) => {
        const r = results[name];
        if (!r) throw new Error(`the session gave no output ${name}`);
        return { name, type: r.type, dims: [...r.dims], data: r.data as Float32Array };
      });
    }
    case 'close': {
      const session = sessions.get(request.session);
      sessions.delete(request.session);
      await session?.release();
      return null;
    }
  }
}

serveRequests<OrtRequest, OrtAnswer>(async (request) => ({ value: await answer(request) }));
