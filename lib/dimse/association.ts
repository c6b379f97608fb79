import { type Socket, connect as netConnect } from 'node:net';
import { type ConnectionOptions as TlsConnectionOptions, connect as tlsConnect } from 'node:tls';
import { ImplementationClassUID, ImplementationVersionName } from '../dicom/uids';

/**
 * A DICOM upper-layer SCU (PS3.8) for C-STORE and C-ECHO, written directly on a socket. dcmjs-dimse's
 * Client parses every file with dcmjs and encodes it again before sending; the outbox instead sends
 * the data set bytes exactly as they are in the file (one read, no parse of the pixel data), which is
 * both faster and guaranteed not to alter what the writer produced.
 */

export interface AssociationTarget {
  host: string;
  port: number;
  calledAE: string;
  callingAE: string;
  /** Largest P-DATA PDU we accept (announced to the peer); default 65536. */
  maxPduLength?: number;
  /** Milliseconds to connect and to be accepted; default 10000. */
  connectTimeoutMs?: number;
  /** Milliseconds to wait for any PDU the peer owes us (a response, the release); default 30000. */
  pduTimeoutMs?: number;
  /** DICOM TLS (PS3.15 B.1): the options given to tls.connect. Absent: plain TCP. */
  tls?: TlsConnectionOptions;
}

export interface ProposedContext {
  abstractSyntax: string;
  transferSyntaxes: string[];
}

export interface NegotiatedContext {
  id: number;
  abstractSyntax: string;
  proposed: string[];
  /** 0 acceptance; 1 user rejection; 2 no reason; 3 abstract syntax not supported; 4 transfer syntaxes not supported. */
  result: number;
  transferSyntax?: string;
}

export interface DimseStatus {
  status: number;
  errorComment?: string;
}

const APPLICATION_CONTEXT = '1.2.840.10008.3.1.1.1';
const VERIFICATION = '1.2.840.10008.1.1';

/** Errors on the way to the peer: `transient` says whether trying again later may help. */
export class AssociationError extends Error {
  constructor(message: string, readonly transient: boolean, readonly code?: string) {
    super(message);
    this.name = 'AssociationError';
  }
}

const RJ_SOURCES: Record<number, string> = { 1: 'service user', 2: 'service provider (ACSE)', 3: 'service provider (presentation)' };
const RJ_REASONS: Record<string, string> = {
  '1:1': 'no reason given', '1:2': 'application context name not supported', '1:3': 'calling AE title not recognized',
  '1:7': 'called AE title not recognized', '2:1': 'no reason given', '2:2': 'protocol version not supported',
  '3:1': 'temporary congestion', '3:2': 'local limit exceeded',
};

export const CONTEXT_RESULTS: Record<number, string> = {
  0: 'accepted', 1: 'user rejection', 2: 'no reason', 3: 'abstract syntax (SOP class) not supported', 4: 'transfer syntaxes not supported',
};

function aeField(ae: string): Buffer {
  const out = Buffer.alloc(16, 0x20);
  out.write(ae.slice(0, 16), 0, 'latin1');
  return out;
}

function item(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head[0] = type;
  head.writeUInt16BE(body.length, 2);
  return Buffer.concat([head, body]);
}

const uidItem = (type: number, uid: string) => item(type, Buffer.from(uid, 'latin1'));

function pdu(type: number, body: Buffer): Buffer {
  const head = Buffer.alloc(6);
  head[0] = type;
  head.writeUInt32BE(body.length, 2);
  return Buffer.concat([head, body]);
}

function associateRq(target: AssociationTarget, contexts: ProposedContext[], maxPdu: number): Buffer {
  const fixed = Buffer.alloc(68);
  fixed.writeUInt16BE(1, 0);
  aeField(target.calledAE).copy(fixed, 4);
  aeField(target.callingAE).copy(fixed, 20);
  const parts = [fixed, uidItem(0x10, APPLICATION_CONTEXT)];
  contexts.forEach((c, i) => {
    const head = Buffer.from([2 * i + 1, 0, 0, 0]);
    parts.push(item(0x20, Buffer.concat([head, uidItem(0x30, c.abstractSyntax), ...c.transferSyntaxes.map((ts) => uidItem(0x40, ts))])));
  });
  const maxLength = Buffer.alloc(4);
  maxLength.writeUInt32BE(maxPdu, 0);
  parts.push(item(0x50, Buffer.concat([item(0x51, maxLength), uidItem(0x52, ImplementationClassUID), item(0x55, Buffer.from(ImplementationVersionName, 'latin1'))])));
  return pdu(0x01, Buffer.concat(parts));
}

/** Reads the fields of a response command set that matter here; tolerant of anything else in it. */
function readResponseCommand(buf: Buffer): { commandField?: number; messageId?: number; status?: number; errorComment?: string } {
  const out: { commandField?: number; messageId?: number; status?: number; errorComment?: string } = {};
  let pos = 0;
  while (pos + 8 <= buf.length) {
    const element = buf.readUInt16LE(pos + 2);
    const length = buf.readUInt32LE(pos + 4);
    const start = pos + 8;
    if (start + length > buf.length) break;
    if (element === 0x0100 && length === 2) out.commandField = buf.readUInt16LE(start);
    else if (element === 0x0120 && length === 2) out.messageId = buf.readUInt16LE(start);
    else if (element === 0x0900 && length === 2) out.status = buf.readUInt16LE(start);
    else if (element === 0x0902) out.errorComment = buf.toString('latin1', start, start + length).replace(/[\0 ]+$/, '');
    pos = start + length;
  }
  return out;
}

/**
 * A request command set (group 0000, Implicit VR Little Endian), elements in tag order. Written here
 * rather than through lib/dimse/command so that sending loads neither dcmjs-dimse nor the dictionary.
 */
function requestCommand(sopClassUID: string, commandField: number, messageId: number, dataSetType: number, sopInstanceUID?: string): Buffer {
  const uid = (value: string) => {
    if (!/^[0-9.]{1,64}$/.test(value)) throw new Error(`${JSON.stringify(value)} cannot go into a command set as a UID`);
    const b = Buffer.alloc(value.length + (value.length % 2));
    b.write(value, 0, 'latin1');
    return b;
  };
  const us = (value: number) => {
    const b = Buffer.allocUnsafe(2);
    b.writeUInt16LE(value, 0);
    return b;
  };
  const elements: Array<[number, Buffer]> = [[0x0002, uid(sopClassUID)], [0x0100, us(commandField)], [0x0110, us(messageId)]];
  if (commandField === 0x0001) elements.push([0x0700, us(0)]);
  elements.push([0x0800, us(dataSetType)]);
  if (sopInstanceUID !== undefined) elements.push([0x1000, uid(sopInstanceUID)]);
  let length = 0;
  for (const [, v] of elements) length += 8 + v.length;
  const out = Buffer.allocUnsafe(12 + length);
  out.writeUInt32LE(0, 0);
  out.writeUInt32LE(4, 4);
  out.writeUInt32LE(length, 8);
  let pos = 12;
  for (const [element, v] of elements) {
    out.writeUInt16LE(0, pos);
    out.writeUInt16LE(element, pos + 2);
    out.writeUInt32LE(v.length, pos + 4);
    v.copy(out, pos + 8);
    pos += 8 + v.length;
  }
  return out;
}

/** Data sets up to this size are copied into one buffer with their PDU headers: one socket write each. */
const COALESCE_LIMIT = 4 << 20;

function describeSocketError(err: NodeJS.ErrnoException, target: AssociationTarget): AssociationError {
  const where = `${target.host}:${target.port}`;
  switch (err.code) {
    case 'ECONNREFUSED': return new AssociationError(`connection refused by ${where}`, true, err.code);
    case 'ECONNRESET': return new AssociationError(`connection reset by ${where}`, true, err.code);
    case 'EPIPE': return new AssociationError(`connection to ${where} closed while sending`, true, err.code);
    case 'ENOTFOUND': case 'EAI_AGAIN': return new AssociationError(`host ${target.host} does not resolve`, true, err.code);
    case 'EHOSTUNREACH': case 'ENETUNREACH': return new AssociationError(`${where} is unreachable`, true, err.code);
    default: return new AssociationError(`network error talking to ${where}: ${err.message}`, true, err.code);
  }
}

type Waiter = { resolve: (value: DimseStatus) => void; reject: (err: Error) => void; commandField: number };

/** One open association. Requests go one at a time (no asynchronous operations window is negotiated). */
export class ScuAssociation {
  readonly contexts: NegotiatedContext[] = [];
  /** The peer's largest PDU; 0 in its A-ASSOCIATE-AC means unlimited, kept here as 1 MiB per PDU. */
  peerMaxPdu = 16384;
  private buffered: Buffer[] = [];
  private bufferedBytes = 0;
  private messageId = 0;
  private waiter?: Waiter;
  private commandFragments: Buffer[] = [];
  private closedError?: AssociationError;
  private releaseResolve?: () => void;
  private timer?: NodeJS.Timeout;
  private onAssociated?: (err?: Error) => void;

  private constructor(private readonly socket: Socket, private readonly target: AssociationTarget) {}

  /** Connects and negotiates. Rejects with AssociationError (permanent for an A-ASSOCIATE-RJ that says so). */
  static open(target: AssociationTarget, proposed: ProposedContext[], signal?: AbortSignal): Promise<ScuAssociation> {
    if (proposed.length === 0 || proposed.length > 128) throw new RangeError(`an association carries 1 to 128 presentation contexts, not ${proposed.length}`);
    const maxPdu = target.maxPduLength ?? 65536;
    const connectTimeout = target.connectTimeoutMs ?? 10000;
    return new Promise((resolve, reject) => {
      const socket = target.tls
        ? tlsConnect({ ...target.tls, host: target.host, port: target.port })
        : netConnect({ host: target.host, port: target.port, noDelay: true });
      socket.setNoDelay(true);
      const association = new ScuAssociation(socket, target);
      let settled = false;
      association.onAssociated = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(association.timer);
        if (err) {
          socket.destroy();
          reject(err);
        } else resolve(association);
      };
      association.timer = setTimeout(() => association.fail(new AssociationError(`no association with ${target.calledAE}@${target.host}:${target.port} within ${connectTimeout} ms`, true, 'ETIMEDOUT')), connectTimeout);
      socket.once(target.tls ? 'secureConnect' : 'connect', () => {
        socket.write(associateRq(target, proposed, maxPdu));
      });
      socket.on('data', (chunk: Buffer) => association.onData(chunk, proposed));
      socket.on('error', (err: NodeJS.ErrnoException) => association.fail(describeSocketError(err, target)));
      socket.on('close', () => association.fail(new AssociationError(`${target.host}:${target.port} closed the connection`, true, 'ECLOSED')));
      // A stop while still connecting (an unreachable host can take the whole connect timeout).
      if (signal?.aborted) association.fail(new AssociationError('association aborted locally', true, 'EABORTED'));
      signal?.addEventListener('abort', () => association.fail(new AssociationError('association aborted locally', true, 'EABORTED')), { once: true });
    });
  }

  /** The accepted context for an abstract syntax whose transfer syntax is the first of `preferred` available. */
  contextFor(abstractSyntax: string, preferred: readonly string[]): NegotiatedContext | undefined {
    for (const ts of preferred) {
      const found = this.contexts.find((c) => c.result === 0 && c.abstractSyntax === abstractSyntax && c.transferSyntax === ts);
      if (found) return found;
    }
    return undefined;
  }

  /** Why no context carries this abstract syntax: the peer's answer for the contexts that proposed it. */
  refusalFor(abstractSyntax: string): string {
    const answers = this.contexts.filter((c) => c.abstractSyntax === abstractSyntax);
    if (answers.length === 0) return 'not proposed';
    const accepted = answers.filter((c) => c.result === 0);
    if (accepted.length > 0) return `accepted only with transfer syntax ${accepted.map((c) => c.transferSyntax).join(', ')}`;
    return [...new Set(answers.map((c) => CONTEXT_RESULTS[c.result] ?? `result ${c.result}`))].join('; ');
  }

  /** C-STORE of one instance; `dataset` is the data set encoded in the context's transfer syntax. */
  store(context: NegotiatedContext, sopClassUID: string, sopInstanceUID: string, dataset: Buffer): Promise<DimseStatus> {
    const command = requestCommand(sopClassUID, 0x0001, this.nextMessageId(), 0x0000, sopInstanceUID);
    return this.request(0x8001, () => {
      if (dataset.length <= COALESCE_LIMIT) {
        this.socket.write(Buffer.concat([...this.pdvs(context.id, command, true), ...this.pdvs(context.id, dataset, false)]));
      } else {
        this.socket.cork();
        for (const part of this.pdvs(context.id, command, true)) this.socket.write(part);
        for (const part of this.pdvs(context.id, dataset, false)) this.socket.write(part);
        process.nextTick(() => this.socket.uncork());
      }
    });
  }

  /** C-ECHO on the Verification context. */
  echo(): Promise<DimseStatus> {
    const context = this.contextFor(VERIFICATION, ['1.2.840.10008.1.2', '1.2.840.10008.1.2.1']);
    if (!context) return Promise.reject(new AssociationError(`the peer did not accept Verification: ${this.refusalFor(VERIFICATION)}`, false));
    const command = requestCommand(VERIFICATION, 0x0030, this.nextMessageId(), 0x0101);
    return this.request(0x8030, () => this.socket.write(Buffer.concat(this.pdvs(context.id, command, true))));
  }

  /** A-RELEASE; the socket is closed either way. */
  async release(): Promise<void> {
    if (this.closedError) return;
    try {
      await new Promise<void>((resolve, reject) => {
        this.releaseResolve = resolve;
        this.waiter = { resolve: () => resolve(), reject, commandField: -1 };
        this.armTimer();
        this.socket.write(pdu(0x05, Buffer.alloc(4)));
      });
    } catch {
      // a peer that closes instead of answering A-RELEASE-RP has released all the same
    } finally {
      clearTimeout(this.timer);
      this.socket.destroy();
    }
  }

  /** A-ABORT and close, for a stop in the middle of a batch. */
  abort(): void {
    if (this.closedError) return;
    try {
      this.socket.write(pdu(0x07, Buffer.from([0, 0, 0, 0])));
    } catch {
      // the socket is going away anyway
    }
    this.fail(new AssociationError('association aborted locally', true, 'EABORTED'));
  }

  private nextMessageId(): number {
    this.messageId = (this.messageId % 0xffff) + 1;
    return this.messageId;
  }

  private request(commandField: number, write: () => void): Promise<DimseStatus> {
    if (this.closedError) return Promise.reject(this.closedError);
    if (this.waiter) return Promise.reject(new Error('one request at a time on an association'));
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject, commandField };
      this.armTimer();
      write();
    });
  }

  private armTimer(): void {
    clearTimeout(this.timer);
    const ms = this.target.pduTimeoutMs ?? 30000;
    this.timer = setTimeout(() => this.fail(new AssociationError(`no answer from ${this.target.host}:${this.target.port} within ${ms} ms`, true, 'ETIMEDOUT')), ms);
  }

  /** P-DATA-TF PDUs (one PDV each) carrying `bytes`, cut to the peer's largest PDU: headers and views, no copies. */
  private pdvs(contextId: number, bytes: Buffer, isCommand: boolean): Buffer[] {
    const room = Math.max(64, this.peerMaxPdu - 6);
    const parts: Buffer[] = [];
    let offset = 0;
    do {
      const end = Math.min(bytes.length, offset + room);
      const last = end === bytes.length;
      const head = Buffer.allocUnsafe(12);
      head[0] = 0x04;
      head[1] = 0;
      head.writeUInt32BE(6 + end - offset, 2);
      head.writeUInt32BE(2 + end - offset, 6);
      head[10] = contextId;
      head[11] = (isCommand ? 1 : 0) | (last ? 2 : 0);
      parts.push(head);
      if (end > offset) parts.push(bytes.subarray(offset, end));
      offset = end;
    } while (offset < bytes.length);
    return parts;
  }

  private fail(err: AssociationError): void {
    if (this.closedError) return;
    this.closedError = err;
    clearTimeout(this.timer);
    this.socket.destroy();
    if (this.onAssociated) {
      const notify = this.onAssociated;
      this.onAssociated = undefined;
      notify(err);
    }
    const waiter = this.waiter;
    this.waiter = undefined;
    if (waiter) {
      if (waiter.commandField === -1) waiter.resolve({ status: 0 });
      else waiter.reject(err);
    }
  }

  private onData(chunk: Buffer, proposed: ProposedContext[]): void {
    this.buffered.push(chunk);
    this.bufferedBytes += chunk.length;
    while (this.bufferedBytes >= 6) {
      const head = this.buffered.length === 1 ? this.buffered[0] : Buffer.concat(this.buffered);
      this.buffered = [head];
      const length = head.readUInt32BE(2);
      if (head.length < 6 + length) return;
      const body = head.subarray(6, 6 + length);
      const rest = head.subarray(6 + length);
      this.buffered = rest.length ? [rest] : [];
      this.bufferedBytes = rest.length;
      try {
        this.onPdu(head[0], body, proposed);
      } catch (err) {
        this.fail(new AssociationError(`malformed PDU from ${this.target.host}:${this.target.port}: ${(err as Error).message}`, true, 'EPROTO'));
        return;
      }
      if (this.closedError) return;
    }
  }

  private onPdu(type: number, body: Buffer, proposed: ProposedContext[]): void {
    const peer = `${this.target.calledAE}@${this.target.host}:${this.target.port}`;
    switch (type) {
      case 0x02: { // A-ASSOCIATE-AC
        this.parseAccept(body, proposed);
        const notify = this.onAssociated;
        this.onAssociated = undefined;
        notify?.();
        return;
      }
      case 0x03: { // A-ASSOCIATE-RJ
        const [result, source, reason] = [body[1], body[2], body[3]];
        const why = RJ_REASONS[`${source}:${reason}`] ?? `reason ${reason}`;
        const permanent = result === 1;
        this.fail(new AssociationError(
          `association rejected by ${peer} (${permanent ? 'permanent' : 'transient'}, ${RJ_SOURCES[source] ?? `source ${source}`}: ${why})`,
          !permanent, 'EREJECTED'));
        return;
      }
      case 0x04: this.onPData(body); return;
      case 0x06: { // A-RELEASE-RP
        const resolve = this.releaseResolve;
        this.releaseResolve = undefined;
        this.waiter = undefined;
        resolve?.();
        return;
      }
      case 0x07: { // A-ABORT
        this.fail(new AssociationError(`association aborted by ${peer} (source ${body[2]}, reason ${body[3]})`, true, 'EABORTED'));
        return;
      }
      case 0x05: // A-RELEASE-RQ from the SCP: answer and close
        this.socket.write(pdu(0x06, Buffer.alloc(4)));
        this.fail(new AssociationError(`${peer} released the association`, true, 'ECLOSED'));
        return;
      default:
        throw new Error(`unexpected PDU type 0x${type.toString(16)}`);
    }
  }

  private parseAccept(body: Buffer, proposed: ProposedContext[]): void {
    let pos = 68;
    while (pos + 4 <= body.length) {
      const type = body[pos];
      const length = body.readUInt16BE(pos + 2);
      const start = pos + 4;
      const end = start + length;
      if (end > body.length) throw new Error('item runs past the PDU');
      if (type === 0x21) {
        const id = body[start];
        const result = body[start + 2];
        let transferSyntax: string | undefined;
        let sub = start + 4;
        while (sub + 4 <= end) {
          const subLength = body.readUInt16BE(sub + 2);
          if (body[sub] === 0x40) transferSyntax = body.toString('latin1', sub + 4, sub + 4 + subLength).replace(/[\0 ]+$/, '');
          sub += 4 + subLength;
        }
        const ours = proposed[(id - 1) / 2];
        if (ours) this.contexts.push({ id, abstractSyntax: ours.abstractSyntax, proposed: ours.transferSyntaxes, result, transferSyntax: result === 0 ? transferSyntax : undefined });
      } else if (type === 0x50) {
        let sub = start;
        while (sub + 4 <= end) {
          const subLength = body.readUInt16BE(sub + 2);
          if (body[sub] === 0x51 && subLength === 4) {
            const max = body.readUInt32BE(sub + 4);
            this.peerMaxPdu = max === 0 ? 1 << 20 : Math.min(max, 1 << 24);
          }
          sub += 4 + subLength;
        }
      }
      pos = end;
    }
  }

  private onPData(body: Buffer): void {
    let pos = 0;
    while (pos + 6 <= body.length) {
      const length = body.readUInt32BE(pos);
      const header = body[pos + 5];
      const data = body.subarray(pos + 6, pos + 4 + length);
      pos += 4 + length;
      if (!(header & 1)) continue; // SCU requests of ours carry no data set answers
      this.commandFragments.push(data);
      if (!(header & 2)) continue;
      const command = readResponseCommand(Buffer.concat(this.commandFragments));
      this.commandFragments = [];
      const waiter = this.waiter;
      if (!waiter || waiter.commandField !== command.commandField) continue;
      this.waiter = undefined;
      clearTimeout(this.timer);
      waiter.resolve({ status: command.status ?? 0xffff, errorComment: command.errorComment });
    }
  }
}

/** C-ECHO: opens an association with Verification only, echoes, releases. Resolves with a line for the user. */
export async function verifyPeer(target: AssociationTarget): Promise<{ ok: boolean; message: string; milliseconds: number }> {
  const started = Date.now();
  let association: ScuAssociation | undefined;
  try {
    association = await ScuAssociation.open(target, [{ abstractSyntax: VERIFICATION, transferSyntaxes: ['1.2.840.10008.1.2.1', '1.2.840.10008.1.2'] }]);
    const answer = await association.echo();
    const milliseconds = Date.now() - started;
    const ok = answer.status === 0;
    return { ok, milliseconds, message: ok ? `C-ECHO succeeded: ${target.calledAE}@${target.host}:${target.port} answered in ${milliseconds} ms` : `C-ECHO answered status 0x${answer.status.toString(16).padStart(4, '0')}${answer.errorComment ? `: ${answer.errorComment}` : ''}` };
  } catch (err) {
    return { ok: false, milliseconds: Date.now() - started, message: (err as Error).message };
  } finally {
    await association?.release();
  }
}
