/**
 * A worker thread answering requests, and the main thread's handle on it. Each request gets an id and one
 * reply; the thread keeps the process alive only while a request is out, and a thread that stops fails
 * every request still out (the next request starts a new one).
 *
 * There is no stop(): Worker.terminate() while the thread is inside native code (an onnxruntime run) aborts
 * the whole process ("terminate called after throwing an instance of 'Napi::Error'"). Idle threads are
 * unreferenced instead, so they never keep the process from exiting.
 */
import { type Transferable, Worker, parentPort } from 'node:worker_threads';

type Reply<T> = { id: number; ok: true; value: T } | { id: number; ok: false; error: { name: string; message: string } };

export class RequestWorker<Request, Answer> {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, { resolve: (value: Answer) => void; reject: (err: Error) => void }>();
  private nextId = 1;

  /** `script`: the compiled worker module, which calls serveRequests. `label` names the thread in errors. */
  constructor(
    private readonly script: string,
    private readonly label: string,
  ) {}

  /** True once the thread has been started (and not stopped since). */
  get running(): boolean {
    return this.worker !== undefined;
  }

  request(body: Request, transfer: Transferable[] = []): Promise<Answer> {
    const worker = this.started();
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, body }, transfer);
    });
  }

  private started(): Worker {
    if (this.worker) return this.worker;
    const worker = new Worker(this.script);
    worker.unref();
    worker.on('message', (reply: Reply<Answer>) => {
      const waiting = this.pending.get(reply.id);
      if (!waiting) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) worker.unref();
      if (reply.ok) waiting.resolve(reply.value);
      else waiting.reject(Object.assign(new Error(reply.error.message), { name: reply.error.name }));
    });
    const stopped = (reason: string) => {
      if (this.worker === worker) this.worker = undefined;
      for (const [id, waiting] of this.pending) {
        this.pending.delete(id);
        waiting.reject(new Error(`the ${this.label} thread stopped (${reason})`));
      }
    };
    worker.on('error', (err: Error) => stopped(err.message));
    worker.on('exit', (code) => stopped(`exit code ${code}`));
    this.worker = worker;
    return worker;
  }
}

/** The worker's side: answers each request with `handle`, in the order they finish; a throw becomes the caller's rejection. */
export function serveRequests<Request, Answer>(handle: (body: Request) => Promise<{ value: Answer; transfer?: Transferable[] }>): void {
  const port = parentPort;
  if (!port) throw new Error('serveRequests runs only in a worker thread');
  port.on('message', ({ id, body }: { id: number; body: Request }) => {
    handle(body).then(
      ({ value, transfer }) => port.postMessage({ id, ok: true, value } satisfies Reply<Answer>, transfer ?? []),
      (err: unknown) => {
        const error = err instanceof Error ? { name: err.name, message: err.message } : { name: 'Error', message: String(err) };
        port.postMessage({ id, ok: false, error } satisfies Reply<Answer>);
      },
    );
  });
}
