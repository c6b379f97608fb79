import { close, closeSync, open, openSync, unlink, unlinkSync, writev, writevSync } from 'node:fs';
import { Writable } from 'node:stream';

/**
 * Bytes held in memory before they go to disk. An MR or CT slice (a few hundred KB) is written with one
 * writev at the end, which is what makes the SCP fast; a 500 MB enhanced multi-frame instance streams
 * through in slices of this size and never sits in memory whole.
 */
export const SPOOL_FLUSH_BYTES = 4 * 1024 * 1024;

/**
 * Instances that fit in one flush are written with synchronous calls: three syscalls on the page cache
 * cost less than three round trips through libuv's thread pool, and the event loop is blocked for well
 * under a millisecond. Larger writes go through the thread pool.
 */
const SYNC_WRITE_LIMIT = 1024 * 1024;

/**
 * Leading bytes kept in memory so the header can be parsed without reading the file back. Headers are
 * almost always shorter; a longer one is read from the file instead.
 */
const HEAD_BYTES = 16 * 1024;

/** Writes every byte of `buffers`, continuing after short writes (a nearly full disk may accept part). */
function writeAllSync(fd: number, buffers: Buffer[], position: number): number {
  let total = 0;
  for (const b of buffers) total += b.length;
  let done = writevSync(fd, buffers, position);
  while (done < total) {
    const rest = remainder(buffers, done);
    done += writevSync(fd, rest, position + done);
  }
  return total;
}

function writeAll(fd: number, buffers: Buffer[], position: number, callback: (err: Error | null, written: number) => void): void {
  let total = 0;
  for (const b of buffers) total += b.length;
  const step = (pending: Buffer[], at: number): void => {
    writev(fd, pending, at, (err, written) => {
      if (err) return callback(err, 0);
      const next = at + written;
      if (next - position >= total) return callback(null, total);
      step(remainder(pending, written), next);
    });
  };
  step(buffers, position);
}

/** The buffers left after the first `skip` bytes. */
function remainder(buffers: Buffer[], skip: number): Buffer[] {
  const out: Buffer[] = [];
  for (const b of buffers) {
    if (skip >= b.length) {
      skip -= b.length;
      continue;
    }
    out.push(skip > 0 ? b.subarray(skip) : b);
    skip = 0;
  }
  return out;
}

/**
 * A Writable that spools one C-STORE data set into a temporary file: the Part 10 header first, then the
 * data set bytes exactly as received (no parsing, no transcoding). `done()` settles once the file is
 * complete and closed, or with the error that stopped it; a failed or discarded spool leaves no file.
 */
export class InstanceSpool extends Writable {
  readonly tempPath: string;
  /** Data set bytes received (the Part 10 header not included). */
  datasetBytes = 0;
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private fd: number | undefined;
  private position = 0;
  private fileCreated = false;
  private kept = false;
  private inFlight = false;
  private unlinkAfterFlight = true;
  private readonly settled: Promise<void>;
  private readonly head: Buffer[] = [];
  private headBytes = 0;
  private fileBytes = 0;

  constructor(tempPath: string, header: Buffer) {
    // The stream's own buffer only fills while a large flush is on its way to disk; the SCP pauses the
    // socket when write() reports it full, so memory stays bounded whatever the peer's speed.
    super({ highWaterMark: SPOOL_FLUSH_BYTES, decodeStrings: false });
    this.tempPath = tempPath;
    this.pending.push(header);
    this.pendingBytes = header.length;
    this.remember(header);
    this.settled = new Promise((resolve, reject) => {
      this.once('finish', resolve);
      this.once('error', reject);
      // Destroyed without an error (the association went away): settle all the same (a no-op after 'finish').
      this.once('close', () => reject(new Error('the instance spool was closed before the data set was complete')));
    });
    // A rejected settle promise nobody awaits yet must not count as an unhandled rejection.
    this.settled.catch(() => undefined);
  }

  /** Called when write() reports a full buffer (a big instance waiting for the disk); wait for 'drain'. */
  onPressure: (() => void) | undefined;

  override write(chunk: unknown, encoding?: BufferEncoding | ((error: Error | null | undefined) => void), callback?: (error: Error | null | undefined) => void): boolean {
    const ok = typeof encoding === 'function' ? super.write(chunk, encoding) : super.write(chunk, encoding as BufferEncoding, callback);
    if (!ok) this.onPressure?.();
    return ok;
  }

  /** Resolves when every byte is in the closed temporary file; rejects with the write error. */
  done(): Promise<void> {
    return this.settled;
  }

  /** The file now belongs to someone else (it was renamed): destroying the spool must not delete it. */
  keep(): void {
    this.kept = true;
  }

  /** Drops the temporary file (after a failure, or when the instance is refused). Never throws. */
  discard(): void {
    this.pending = [];
    this.head.length = 0;
    if (!this.destroyed) this.destroy();
    else this.unlinkTemp();
  }

  /**
   * The first bytes of the file (16 KB, or all of it if shorter), for parsing the header from memory.
   * `complete` says whether that is the whole file.
   */
  headBytesOf(): { bytes: Buffer; complete: boolean; fileSize: number } {
    const bytes = this.head.length === 1 ? this.head[0] : Buffer.concat(this.head, this.headBytes);
    return { bytes, complete: this.headBytes === this.fileBytes, fileSize: this.fileBytes };
  }

  private remember(chunk: Buffer): void {
    this.fileBytes += chunk.length;
    if (this.headBytes >= HEAD_BYTES) return;
    const part = this.headBytes + chunk.length > HEAD_BYTES ? chunk.subarray(0, HEAD_BYTES - this.headBytes) : chunk;
    this.head.push(part);
    this.headBytes += part.length;
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.accept(chunk);
    this.flushWhenFull(callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) this.accept(chunk);
    this.flushWhenFull(callback);
  }

  private accept(chunk: Buffer): void {
    this.remember(chunk);
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    this.datasetBytes += chunk.length;
  }

  /** Small instances are written in one go at the end; large ones in SPOOL_FLUSH_BYTES batches. */
  private flushWhenFull(callback: (error?: Error | null) => void): void {
    if (this.pendingBytes < SPOOL_FLUSH_BYTES) return callback();
    this.flushAsync(callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.fd === undefined && this.pendingBytes <= SYNC_WRITE_LIMIT) {
      // The common case: the whole instance is in memory. open + writev + close, synchronously.
      let fd: number | undefined;
      try {
        fd = openSync(this.tempPath, 'w');
        this.fileCreated = true;
        writeAllSync(fd, this.takePending(), 0);
        const closing = fd;
        fd = undefined;
        closeSync(closing);
        return callback();
      } catch (err) {
        if (fd !== undefined) {
          try {
            closeSync(fd);
          } catch {
            // already failing; the write error is the one to report
          }
        }
        return callback(err as Error);
      }
    }
    this.flushAsync((err) => {
      if (err) return callback(err);
      const fd = this.fd;
      this.fd = undefined;
      if (fd === undefined) return callback();
      close(fd, (closeErr) => callback(closeErr));
    });
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.pending = [];
    // A write on the thread pool still uses the descriptor: closing it now could let the number be
    // reused by another open and the late write land in that file. The flight closes it when it lands.
    if (!this.inFlight) this.closeAndMaybeUnlink(error !== null || !this.writableFinished);
    else this.unlinkAfterFlight = error !== null || !this.writableFinished;
    callback(error);
  }

  private closeAndMaybeUnlink(unlinkFile: boolean): void {
    const fd = this.fd;
    this.fd = undefined;
    if (fd !== undefined) {
      try {
        closeSync(fd);
      } catch {
        // the descriptor is gone either way
      }
    }
    if (unlinkFile) this.unlinkTemp();
  }

  private takePending(): Buffer[] {
    const out = this.pending;
    this.pending = [];
    this.pendingBytes = 0;
    return out;
  }

  private flushAsync(callback: (error?: Error | null) => void): void {
    const buffers = this.takePending();
    this.inFlight = true;
    const landed = (err?: Error | null): void => {
      this.inFlight = false;
      if (this.destroyed) {
        this.closeAndMaybeUnlink(this.unlinkAfterFlight);
        return callback(err ?? new Error('instance spool destroyed'));
      }
      callback(err);
    };
    const write = (fd: number): void => {
      if (buffers.length === 0) return landed();
      writeAll(fd, buffers, this.position, (err, written) => {
        if (err) return landed(err);
        this.position += written;
        landed();
      });
    };
    if (this.fd !== undefined) return write(this.fd);
    open(this.tempPath, 'w', (err, fd) => {
      if (err) return landed(err);
      this.fileCreated = true;
      this.fd = fd;
      if (this.destroyed) return landed();
      write(fd);
    });
  }

  private unlinkTemp(): void {
    if (this.kept || !this.fileCreated) return;
    this.fileCreated = false;
    try {
      unlinkSync(this.tempPath);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') unlink(this.tempPath, () => undefined);
    }
  }
}
