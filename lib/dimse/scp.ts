import { EventEmitter } from 'node:events';
import { existsSync, mkdirSync, readdirSync, renameSync, unlinkSync } from 'node:fs';
import { type AddressInfo, type Server, type Socket, createServer } from 'node:net';
import { join } from 'node:path';
import { type TlsOptions, createServer as createTlsServer } from 'node:tls';
import {
  Dataset,
  Implementation,
  Scp,
  constants as dimseConstants,
  log as dimseLog,
  responses as dimseResponses,
  type association as dimseAssociation,
  type requests as dimseRequests,
} from 'dcmjs-dimse';
import { type DicomFile, DicomParseError, parseDicom, readDicomHeader } from '../dicom/reader';
import { ImplementationClassUID, ImplementationVersionName } from '../dicom/uids';
import { JobPathError, type JobRef, JobStore, instanceFileName, DICOM_DIR, failInterruptedJobs } from '../job';
import { type CompletedJob, type Grouping, type InstanceInfo, JobAssembler, MissingIdentityError, type OpenJob, instanceInfoOf } from '../ingest/assembler';
import {
  type AllowEntry, type ResolvedAllowEntry, chooseTransferSyntax, decideAssociation, isStorageAbstractSyntax, normalizeAddress,
  resolveAllowList, validateAeTitle, VERIFICATION_SOP_CLASS,
} from './policy';
import { installFastCommandCodec } from './command';
import { part10Header } from './meta';
import { InstanceSpool } from './spool';

type Association = dimseAssociation.Association;
type PresentationContext = dimseAssociation.PresentationContext;
type CStoreRequest = dimseRequests.CStoreRequest;
type CEchoRequest = dimseRequests.CEchoRequest;

/** C-STORE response statuses this SCP sends (PS3.4 B.2.3). */
export const StoreStatus = {
  Success: 0x0000,
  /** Refused: out of resources (disk full, quota, I/O error). */
  OutOfResources: 0xa700,
  /** Error: data set does not match SOP class (missing or invalid identifying attributes, UID mismatch). */
  DataSetDoesNotMatchSopClass: 0xa900,
  /** Error: cannot understand (the data set does not parse). */
  CannotUnderstand: 0xc000,
  /** Failure: processing failure (anything else that went wrong here). */
  ProcessingFailure: 0x0110,
} as const;

export type LogLevel = 'info' | 'warn' | 'error';
export type ScpLogger = (level: LogLevel, message: string) => void;

export interface StoreScpOptions {
  /** Jobs are created under this folder; `.incoming/` inside it holds instances being received. */
  workRoot: string;
  /** Our AE title (default "CLARA"). */
  aeTitle?: string;
  /** TCP port (default 11112); 0 picks a free one, which `listen()` reports. */
  port?: number;
  /** Address to bind (default 0.0.0.0). */
  host?: string;
  /** Calling AEs allowed to associate. Empty or absent: any calling AE is accepted. */
  allow?: readonly AllowEntry[];
  /** Accept any called AE title instead of only our own (default false). */
  acceptAnyCalledAE?: boolean;
  grouping?: Grouping;
  /** Seconds after a study's last instance when it is complete (default 5, as Clara's DICOM Adapter). */
  studyTimeoutSeconds?: number;
  /** Largest P-DATA PDU we accept (default 65536). */
  maxPduLength?: number;
  /** Adopt jobs a previous SCP on this work root left in state "receiving" (default true). */
  resume?: boolean;
  /** Seconds an idle association may stay open before it is aborted (default 60). */
  idleTimeoutSeconds?: number;
  /**
   * DICOM TLS (PS3.15 B.1): the options given to tls.createServer (key, cert, and for client certificates
   * ca, requestCert, rejectUnauthorized). Absent: plain TCP. A peer whose handshake fails (no certificate,
   * one the CA did not sign, or plain DICOM on the TLS port) is refused before any association.
   */
  tls?: TlsOptions;
  log?: ScpLogger;
}

export interface AssociationEvent {
  associationId: string;
  event: 'accepted' | 'rejected' | 'released' | 'aborted' | 'closed';
  callingAE: string;
  calledAE: string;
  remoteAddress: string;
  /** Why it was rejected or aborted. */
  reason?: string;
  /** Instances stored and refused on this association so far. */
  stored: number;
  rejected: number;
}

export interface StoredInstance {
  job: JobRef;
  sopInstanceUID: string;
  sopClassUID?: string;
  studyInstanceUID: string;
  seriesInstanceUID?: string;
  /** True when the job already held this SOP instance: the file was replaced and counted once. */
  duplicate: boolean;
  /** Instances in the job so far. */
  jobInstances: number;
  bytes: number;
  transferSyntaxUID: string;
  callingAE: string;
  associationId: string;
}

export interface RejectedInstance {
  /** As the C-STORE request named it (it may be the very thing that is wrong). */
  sopInstanceUID: string;
  status: number;
  reason: string;
  callingAE: string;
  remoteAddress: string;
  associationId: string;
  /** The job the instance was counted against, when its study was known. */
  job?: JobRef;
}

export interface StoreScpEvents {
  association: [AssociationEvent];
  instance: [StoredInstance];
  rejected: [RejectedInstance];
  job: [CompletedJob];
  /** Server-level problems after listen() succeeded. Emitted only when someone listens for it. */
  error: [Error];
}

export interface StoreScpStats {
  associations: number;
  activeAssociations: number;
  stored: number;
  rejected: number;
  jobs: number;
}

const DEFAULTS = {
  aeTitle: 'CLARA',
  port: 11112,
  host: '0.0.0.0',
  grouping: 'study' as Grouping,
  studyTimeoutSeconds: 5,
  maxPduLength: 65536,
  idleTimeoutSeconds: 60,
};

/** errno codes that mean "no room or no working disk": answered with Refused: Out of Resources. */
const OUT_OF_RESOURCE_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EFBIG', 'EMFILE', 'ENFILE', 'ENOMEM', 'EROFS']);

// dcmjs-dimse logs every PDU through loglevel's root logger, to the console, by default. Our own log
// callback reports what matters (associations, failures); CLARA_DIMSE_DEBUG=1 brings the library's back.
dimseLog.setLevel(process.env.CLARA_DIMSE_DEBUG ? 'info' : 'silent');
installFastCommandCodec();

/**
 * The received instance's header, parsed from the bytes still in memory when they hold it (nearly
 * always), else read back from the temporary file. Both give exactly what readDicomHeader gives.
 */
function headerOf(spool: InstanceSpool, transferSyntaxUID: string): DicomFile {
  const head = spool.headBytesOf();
  try {
    return parseDicom(head.bytes, { stopAtPixelData: true, complete: head.complete, fileSize: head.fileSize, fallbackTransferSyntax: transferSyntaxUID });
  } catch (err) {
    // A parse error in bytes we hold is final; running out of them means the header is longer.
    if (err instanceof DicomParseError) throw err;
  }
  return readDicomHeader(spool.tempPath, { fallbackTransferSyntax: transferSyntaxUID });
}

interface Outcome {
  status: number;
  reason?: string;
  stored?: StoredInstance;
  job?: OpenJob;
  /** Known when the header was readable: a refusal is then counted against that study's job. */
  studyInstanceUID?: string;
}

interface Transfer {
  spool: InstanceSpool;
  request: CStoreRequest;
  transferSyntaxUID: string;
  /** Set when the transfer could not even start (the spool then swallows the bytes). */
  failure?: Outcome;
}

function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function describe(err: unknown): string {
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

/** A local failure: out of resources for disk trouble, processing failure for anything else. */
function localFailure(what: string, err: unknown): Outcome {
  const code = errorCode(err);
  const status = code && OUT_OF_RESOURCE_CODES.has(code) ? StoreStatus.OutOfResources : StoreStatus.ProcessingFailure;
  return { status, reason: `${what}: ${describe(err)}` };
}

/** The Error Comment (0000,0902) is LO: at most 64 characters. */
function errorComment(reason: string): string {
  const ascii = reason.replace(/[^\x20-\x7e]/g, '?').replace(/\\/g, '/');
  return ascii.length <= 64 ? ascii : ascii.slice(0, 61) + '...';
}

/**
 * A C-STORE SCP (plus C-ECHO) that writes every instance to a job folder before answering it.
 *
 * Each data set is streamed to `<workRoot>/.incoming/` (Part 10 header first, then the bytes exactly as
 * received), its header is read back, its SOP Instance UID checked, and the file renamed into
 * `<job>/dicom/<SOPInstanceUID>.dcm`; only then is Success sent. Instances are grouped into jobs (see
 * JobAssembler) and each finished job is emitted once as a 'job' event.
 *
 * `close()` frees the port and drops open connections. Jobs still receiving are left in state
 * "receiving" (default) so the next SCP on the same work root and AE title resumes them, or, with
 * `{ flush: true }`, are completed and emitted right away.
 */
export class StoreScp extends EventEmitter<StoreScpEvents> {
  readonly aeTitle: string;
  readonly store: JobStore;
  private readonly options: Required<Omit<StoreScpOptions, 'log' | 'allow' | 'tls'>> & { allow: readonly AllowEntry[] };
  private readonly tlsOptions: TlsOptions | undefined;
  private readonly logger: ScpLogger;
  private readonly incomingDir: string;
  private allow: ResolvedAllowEntry[] = [];
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly handlers = new Map<string, AssociationHandler>();
  private assembler: JobAssembler | undefined;
  private associationCounter = 0;
  private spoolCounter = 0;
  private closing: Promise<void> | undefined;
  private readonly counters = { associations: 0, stored: 0, rejected: 0, jobs: 0 };

  constructor(options: StoreScpOptions) {
    super();
    this.aeTitle = validateAeTitle(options.aeTitle ?? DEFAULTS.aeTitle);
    const studyTimeoutSeconds = options.studyTimeoutSeconds ?? DEFAULTS.studyTimeoutSeconds;
    if (!(studyTimeoutSeconds > 0)) throw new RangeError(`study timeout must be more than 0 s, not ${studyTimeoutSeconds}`);
    const maxPduLength = options.maxPduLength ?? DEFAULTS.maxPduLength;
    if (!Number.isInteger(maxPduLength) || maxPduLength < 4096 || maxPduLength > 16 * 1024 * 1024) {
      throw new RangeError(`max PDU length must be an integer from 4096 to 16777216, not ${maxPduLength}`);
    }
    const port = options.port ?? DEFAULTS.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`port must be an integer from 0 to 65535, not ${port}`);
    this.options = {
      workRoot: options.workRoot,
      aeTitle: this.aeTitle,
      port,
      host: options.host ?? DEFAULTS.host,
      allow: options.allow ?? [],
      acceptAnyCalledAE: options.acceptAnyCalledAE ?? false,
      grouping: options.grouping ?? DEFAULTS.grouping,
      studyTimeoutSeconds,
      maxPduLength,
      resume: options.resume ?? true,
      idleTimeoutSeconds: options.idleTimeoutSeconds ?? DEFAULTS.idleTimeoutSeconds,
    };
    this.tlsOptions = options.tls;
    this.logger = options.log ?? (() => undefined);
    this.store = new JobStore(options.workRoot);
    this.incomingDir = join(this.store.root, '.incoming');
  }

  get port(): number | undefined {
    const address = this.server?.address();
    return address && typeof address === 'object' ? address.port : undefined;
  }

  get stats(): StoreScpStats {
    return { ...this.counters, activeAssociations: this.handlers.size };
  }

  /** Jobs still collecting instances, for status displays. */
  get receivingJobs(): Array<{ job: JobRef; instances: number }> {
    return (this.assembler?.openJobs ?? []).map((j) => ({ job: j.ref, instances: j.instances.size }));
  }

  /** Starts listening; resolves with the bound port (useful with port 0). Rejects on EADDRINUSE and the like. */
  async listen(): Promise<{ port: number; host: string }> {
    if (this.server) throw new Error('this SCP is already listening');
    if (this.closing) throw new Error('this SCP is closed; create a new one');
    this.allow = await resolveAllowList(this.options.allow, (m) => this.log('warn', m));
    mkdirSync(this.incomingDir, { recursive: true });
    this.removeStaleTempFiles();
    // dcmjs-dimse keeps these process-wide. The A-ASSOCIATE-AC names this package (as our Part 10 files do);
    // the max PDU is only ever raised, so another SCP in the process with a larger one keeps it.
    Implementation.setImplementationClassUid(ImplementationClassUID);
    Implementation.setImplementationVersion(ImplementationVersionName);
    if (Implementation.getMaxPduLength() < this.options.maxPduLength) Implementation.setMaxPduLength(this.options.maxPduLength);
    this.assembler = new JobAssembler({
      store: this.store,
      grouping: this.options.grouping,
      source: 'dimse',
      studyTimeoutMs: this.options.studyTimeoutSeconds * 1000,
      onComplete: (job) => this.onJobComplete(job),
      isBusy: (job) => [...job.associations].some((id) => this.handlers.get(id)?.receiving === true),
      log: (level, message) => this.log(level, message),
    });

    const tlsOptions = this.tlsOptions;
    const server: Server = tlsOptions
      ? createTlsServer({ handshakeTimeout: this.options.idleTimeoutSeconds * 1000, ...tlsOptions }, (socket) => this.onConnection(socket)).on('tlsClientError', (err, socket) => this.onTlsRefused(err, socket))
      : createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        server.removeListener('listening', onListening);
        this.server = undefined;
        const where = `${this.options.host}:${this.options.port}`;
        reject(new Error(err.code === 'EADDRINUSE' ? `port ${where} is already in use` : `cannot listen on ${where}: ${describe(err)}`));
      };
      const onListening = () => {
        server.removeListener('error', onError);
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ port: this.options.port, host: this.options.host });
    });
    server.on('error', (err) => this.reportError(new Error(`SCP server error: ${describe(err)}`)));
    const port = (server.address() as AddressInfo).port;
    this.log('info', `listening as ${this.aeTitle} on ${this.options.host}:${port} (grouping ${this.options.grouping}, study timeout ${this.options.studyTimeoutSeconds} s${this.allow.length ? `, ${this.allow.length} allowed peer(s)` : ', any calling AE'}${tlsOptions ? `, TLS${tlsOptions.requestCert && tlsOptions.rejectUnauthorized !== false ? ' with client certificates' : ''}` : ''})`);
    if (this.options.resume) {
      try {
        const adopted = this.assembler.resume(this.aeTitle);
        if (adopted) this.log('info', `resumed ${adopted} job(s) left receiving by a previous run`);
      } catch (err) {
        this.log('warn', `cannot resume earlier jobs: ${describe(err)}`);
      }
      try {
        for (const job of failInterruptedJobs(this.store)) this.log('warn', `job ${job.id} marked failed: ${job.errors[job.errors.length - 1]?.message}`);
      } catch (err) {
        this.log('warn', `cannot mark interrupted jobs failed: ${describe(err)}`);
      }
    }
    return { port, host: this.options.host };
  }

  /**
   * Stops listening and drops every connection (instances in flight are discarded and never answered).
   * Jobs still receiving stay "receiving" for the next SCP to resume, or are completed now with `flush`.
   */
  close(options: { flush?: boolean } = {}): Promise<void> {
    if (this.closing) return this.closing;
    this.closing = new Promise<void>((resolve) => {
      const server = this.server;
      for (const socket of this.sockets) socket.destroy();
      this.sockets.clear();
      for (const handler of this.handlers.values()) handler.dispose();
      this.handlers.clear();
      if (this.assembler) {
        if (options.flush) this.assembler.completeAll('close');
        this.assembler.suspend();
      }
      if (!server || !server.listening) return resolve();
      server.close(() => resolve());
    });
    return this.closing;
  }

  // ---- internals used by AssociationHandler ------------------------------------------------------

  /** @internal */
  log(level: LogLevel, message: string): void {
    try {
      this.logger(level, message);
    } catch {
      // a broken logger must not take the SCP down
    }
  }

  /** @internal */
  get policy(): { aeTitle: string; acceptAnyCalledAE: boolean; allow: readonly ResolvedAllowEntry[]; maxPduLength: number } {
    return { aeTitle: this.aeTitle, acceptAnyCalledAE: this.options.acceptAnyCalledAE, allow: this.allow, maxPduLength: this.options.maxPduLength };
  }

  /** @internal A fresh temporary file name in the incoming folder (same file system as the jobs). */
  nextTempPath(): string {
    return join(this.incomingDir, `${process.pid}.${++this.spoolCounter}.part`);
  }

  /** @internal */
  emitSafely<K extends keyof StoreScpEvents>(event: K, ...args: StoreScpEvents[K]): void {
    try {
      (this.emit as (e: K, ...a: StoreScpEvents[K]) => boolean)(event, ...args);
    } catch (err) {
      this.log('error', `a '${String(event)}' listener threw: ${describe(err)}`);
    }
  }

  /** @internal Files the instance into its job, or says why not. Never throws. */
  fileInstance(handler: AssociationHandler, transfer: Transfer): Outcome {
    const spool = transfer.spool;
    const assembler = this.assembler;
    if (!assembler || this.closing) {
      spool.discard();
      return { status: StoreStatus.ProcessingFailure, reason: 'the SCP is shutting down' };
    }
    let info: InstanceInfo;
    try {
      info = instanceInfoOf(headerOf(spool, transfer.transferSyntaxUID));
    } catch (err) {
      spool.discard();
      if (err instanceof MissingIdentityError) return { status: StoreStatus.DataSetDoesNotMatchSopClass, reason: err.message };
      if (err instanceof DicomParseError || !errorCode(err)) return { status: StoreStatus.CannotUnderstand, reason: `data set does not parse: ${describe(err)}` };
      return localFailure('cannot read the received data set back', err);
    }
    const affectedSop = String(transfer.request.getAffectedSopInstanceUid() ?? '');
    const affectedClass = String(transfer.request.getAffectedSopClassUid() ?? '');
    let fileName: string;
    try {
      fileName = instanceFileName(info.sopInstanceUID);
    } catch (err) {
      spool.discard();
      return {
        status: StoreStatus.DataSetDoesNotMatchSopClass,
        reason: err instanceof JobPathError ? err.message : describe(err),
        studyInstanceUID: info.studyInstanceUID,
      };
    }
    let refusal: string | undefined;
    if (info.sopInstanceUID !== affectedSop) refusal = `SOP Instance UID ${info.sopInstanceUID} in the data set differs from ${JSON.stringify(affectedSop.slice(0, 80))} in the C-STORE request`;
    else if (info.sopClassUID && affectedClass && info.sopClassUID !== affectedClass) refusal = `SOP Class UID ${info.sopClassUID} in the data set differs from ${affectedClass} in the C-STORE request`;
    if (refusal) {
      spool.discard();
      return { status: StoreStatus.DataSetDoesNotMatchSopClass, reason: refusal, studyInstanceUID: info.studyInstanceUID };
    }
    let job: OpenJob | undefined;
    // Two attempts: if the job's folder was deleted while it was receiving, the first rename fails with
    // ENOENT, the job is abandoned and the instance goes to a fresh one.
    for (let attempt = 1; ; attempt++) {
      try {
        job = assembler.jobFor(info.studyInstanceUID, handler.source);
      } catch (err) {
        spool.discard();
        return localFailure('cannot create the job folder', err);
      }
      try {
        renameSync(spool.tempPath, join(job.ref.dir, DICOM_DIR, fileName));
        break;
      } catch (err) {
        if (attempt === 1 && errorCode(err) === 'ENOENT' && !existsSync(job.ref.dir)) {
          assembler.abandon(job, `its folder ${job.ref.dir} disappeared while receiving`);
          continue;
        }
        spool.discard();
        return { ...localFailure(`cannot move the instance into job ${job.ref.id}`, err), job };
      }
    }
    spool.keep();
    const { duplicate } = assembler.addInstance(job, info);
    return {
      status: StoreStatus.Success,
      job,
      stored: {
        job: job.ref,
        sopInstanceUID: info.sopInstanceUID,
        sopClassUID: info.sopClassUID,
        studyInstanceUID: info.studyInstanceUID,
        seriesInstanceUID: info.seriesInstanceUID,
        duplicate,
        jobInstances: job.instances.size,
        bytes: spool.datasetBytes,
        transferSyntaxUID: transfer.transferSyntaxUID,
        callingAE: handler.callingAE,
        associationId: handler.id,
      },
    };
  }

  /** @internal Bookkeeping and events once an instance has been answered. */
  recordOutcome(handler: AssociationHandler, transfer: Transfer | undefined, outcome: Outcome): void {
    if (outcome.status === StoreStatus.Success && outcome.stored) {
      this.counters.stored++;
      handler.stored++;
      this.emitSafely('instance', outcome.stored);
      return;
    }
    this.counters.rejected++;
    handler.rejected++;
    const sop = transfer ? String(transfer.request.getAffectedSopInstanceUid() ?? '') : '';
    const reason = outcome.reason ?? 'unknown failure';
    const note = `${JSON.stringify(sop.slice(0, 80))} from ${handler.callingAE}: ${reason}`;
    let jobRef: JobRef | undefined;
    try {
      const open = this.assembler?.openJobs ?? [];
      const job = outcome.job ?? (outcome.studyInstanceUID ? undefined : handler.lastJob);
      if (job && open.includes(job)) {
        this.assembler?.addRejected(job, note);
        jobRef = job.ref;
      } else if (outcome.studyInstanceUID) {
        jobRef = this.assembler?.noteRejection(outcome.studyInstanceUID, handler.source, note);
      }
    } catch (err) {
      this.log('warn', `cannot count a refusal against its job: ${describe(err)}`);
    }
    this.log('warn', `C-STORE of ${JSON.stringify(sop.slice(0, 80))} from ${handler.callingAE}@${handler.remoteAddress} refused with 0x${outcome.status.toString(16).padStart(4, '0').toUpperCase()}: ${reason}`);
    this.emitSafely('rejected', {
      sopInstanceUID: sop,
      status: outcome.status,
      reason,
      callingAE: handler.callingAE,
      remoteAddress: handler.remoteAddress,
      associationId: handler.id,
      job: jobRef,
    });
  }

  /** @internal */
  associationEnded(handler: AssociationHandler): void {
    this.handlers.delete(handler.id);
    if (this.options.grouping === 'association' && !this.closing) {
      try {
        this.assembler?.completeAssociation(handler.id);
      } catch (err) {
        this.log('error', `completing the job of association ${handler.id} failed: ${describe(err)}`);
      }
    }
  }

  private onConnection(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    try {
      socket.setNoDelay(true);
      this.sockets.add(socket);
      const id = String(++this.associationCounter);
      const handler = new AssociationHandler(socket, this, id, this.options.idleTimeoutSeconds * 1000);
      this.handlers.set(id, handler);
      socket.once('close', () => {
        this.sockets.delete(socket);
        handler.onSocketClosed();
      });
    } catch (err) {
      this.log('error', `cannot serve a connection from ${socket.remoteAddress}: ${describe(err)}`);
      socket.destroy();
    }
  }

  /** A TLS handshake that failed: no association ever started, so nothing else knows of this peer. */
  private onTlsRefused(err: Error, socket: Socket): void {
    const remoteAddress = normalizeAddress(socket.remoteAddress);
    const reason = `TLS handshake refused: ${describe(err)}`;
    this.log('warn', `connection from ${remoteAddress || '?'} refused: ${reason}`);
    this.emitSafely('association', { associationId: String(++this.associationCounter), event: 'rejected', callingAE: '', calledAE: '', remoteAddress, reason, stored: 0, rejected: 0 });
    socket.destroy();
  }

  private onJobComplete(job: CompletedJob): void {
    this.counters.jobs++;
    this.log('info', `job ${job.job.id} complete: study ${job.summary.studyInstanceUID}, ${job.summary.instances} instance(s) in ${job.summary.series.length} series${job.summary.rejected ? `, ${job.summary.rejected} refused` : ''} (${job.summary.completedBy})`);
    this.emitSafely('job', job);
  }

  private reportError(err: Error): void {
    this.log('error', err.message);
    if (this.listenerCount('error') > 0) this.emitSafely('error', err);
  }

  /** Temporary files of processes that no longer run (a crash mid-transfer) are deleted. */
  private removeStaleTempFiles(): void {
    let names: string[];
    try {
      names = readdirSync(this.incomingDir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = /^(\d+)\..*\.part$/.exec(name);
      if (!m) continue;
      const pid = Number(m[1]);
      if (pid === process.pid) continue;
      try {
        process.kill(pid, 0);
        continue; // still running: maybe another SCP on this work root
      } catch (err) {
        if (errorCode(err) !== 'ESRCH') continue;
      }
      try {
        unlinkSync(join(this.incomingDir, name));
      } catch {
        // gone already
      }
    }
  }
}

interface ResponseWithComment {
  setErrorComment(comment: string): void;
}

/**
 * One connection. dcmjs-dimse calls these methods from its event emitter, where a throw would escape
 * into an unhandled promise rejection and could end the process, so each one catches everything.
 */
class AssociationHandler extends Scp {
  readonly id: string;
  callingAE = '';
  calledAE = '';
  readonly remoteAddress: string;
  stored = 0;
  rejected = 0;
  lastJob: OpenJob | undefined;
  private accepted = false;
  private ended = false;
  private transfer: Transfer | undefined;
  private paused = false;
  private readonly outcomes = new WeakMap<CStoreRequest, { transfer: Transfer; outcome: Outcome }>();
  private readonly clientSocket: Socket;

  constructor(
    socket: Socket,
    private readonly owner: StoreScp,
    id: string,
    idleTimeoutMs: number,
  ) {
    super(socket, { associationTimeout: idleTimeoutMs, pduTimeout: idleTimeoutMs, connectTimeout: idleTimeoutMs });
    this.id = id;
    this.clientSocket = socket;
    this.remoteAddress = normalizeAddress(socket.remoteAddress);
    // Network's association timer only starts on 'connect', which an accepted socket never emits.
    Object.assign(this as unknown as { connected: boolean; connectedTime: number }, { connected: true, connectedTime: Date.now() });
    this.on('networkError', (err: Error) => {
      try {
        if (!this.ended) this.owner.log('warn', `association ${this.id} (${this.callingAE || '?'}@${this.remoteAddress}): ${describe(err)}`);
      } finally {
        socket.destroy();
      }
    });
  }

  /** True while an instance's bytes are arriving or being filed. */
  get receiving(): boolean {
    return this.transfer !== undefined;
  }

  get source(): { callingAE: string; calledAE: string; remoteAddress: string; associationId: string } {
    return { callingAE: this.callingAE, calledAE: this.calledAE, remoteAddress: this.remoteAddress, associationId: this.id };
  }

  override associationRequested(association: Association): void {
    try {
      this.callingAE = String(association.getCallingAeTitle() ?? '').trim();
      this.calledAE = String(association.getCalledAeTitle() ?? '').trim();
      const policy = this.owner.policy;
      const decision = decideAssociation({ callingAE: this.callingAE, calledAE: this.calledAE, remoteAddress: this.remoteAddress }, policy);
      if (!decision.accept) {
        const reason = decision.reason === 'called-ae-not-recognized' ? dimseConstants.RejectReason.CalledAeNotRecognized : dimseConstants.RejectReason.CallingAeNotRecognized;
        this.sendAssociationReject(dimseConstants.RejectResult.Permanent, dimseConstants.RejectSource.ServiceUser, reason);
        this.owner.log('warn', `association from ${this.callingAE}@${this.remoteAddress} rejected: ${decision.message}`);
        this.emitAssociation('rejected', decision.message);
        this.hangUpSoon();
        return;
      }
      for (const { context } of association.getPresentationContexts()) this.negotiate(context);
      association.setMaxPduLength(policy.maxPduLength);
      this.sendAssociationAccept();
      this.accepted = true;
      this.owner.log('info', `association ${this.id} accepted from ${this.callingAE}@${this.remoteAddress}`);
      this.emitAssociation('accepted');
    } catch (err) {
      this.owner.log('error', `association request from ${this.remoteAddress} could not be handled: ${describe(err)}`);
      try {
        this.sendAssociationReject(dimseConstants.RejectResult.Transient, dimseConstants.RejectSource.ServiceUser, dimseConstants.RejectReason.NoReasonGiven);
      } catch {
        // the peer will see the connection close instead
      }
      this.hangUpSoon();
    }
  }

  override associationReleaseRequested(): void {
    try {
      this.sendAssociationReleaseResponse();
      this.finish('released');
    } catch (err) {
      this.owner.log('warn', `release of association ${this.id} failed: ${describe(err)}`);
      this.clientSocket.destroy();
    }
  }

  override abort(): void {
    try {
      this.finish('aborted', 'the peer aborted the association');
    } finally {
      this.clientSocket.destroy();
    }
  }

  override cEchoRequest(request: CEchoRequest, callback: (response: dimseResponses.CEchoResponse) => void): void {
    try {
      if (!this.accepted) {
        this.clientSocket.destroy();
        return;
      }
      const response = dimseResponses.CEchoResponse.fromRequest(request);
      response.setStatus(StoreStatus.Success);
      callback(response);
    } catch (err) {
      this.owner.log('warn', `C-ECHO on association ${this.id} failed: ${describe(err)}`);
    }
  }

  override createStoreWritableStream(context: PresentationContext, request: CStoreRequest): InstanceSpool {
    const transferSyntaxUID = String(context?.getAcceptedTransferSyntaxUid() ?? '');
    let header: Buffer;
    let failure: Outcome | undefined;
    // dcmjs-dimse hands over whatever arrives; a peer that sends data on a presentation context we did
    // not accept (or before we accepted the association) gets its bytes swallowed and a refusal.
    if (!this.accepted) {
      failure = { status: StoreStatus.ProcessingFailure, reason: 'no association has been accepted on this connection' };
      this.clientSocket.destroy();
    } else if (!context || context.getResult() !== dimseConstants.PresentationContextResult.Accept) {
      failure = { status: 0x0122, reason: 'C-STORE on a presentation context that was not accepted' };
    }
    try {
      header = part10Header({
        sopClassUID: String(request.getAffectedSopClassUid() ?? ''),
        sopInstanceUID: String(request.getAffectedSopInstanceUid() ?? ''),
        transferSyntaxUID,
        sourceAETitle: this.callingAE || undefined,
      });
    } catch (err) {
      header = Buffer.alloc(0);
      failure ??= { status: StoreStatus.DataSetDoesNotMatchSopClass, reason: `C-STORE request identity cannot be encoded: ${describe(err)}` };
    }
    const spool = new InstanceSpool(this.owner.nextTempPath(), header);
    // The stream reports a full buffer while a big instance waits for the disk: stop reading the socket
    // until it drains, so memory stays bounded whatever the sender's speed.
    spool.onPressure = () => {
      // A failed spool (disk full) also refuses writes, but will never drain: keep reading then, so the
      // rest of the data set is swallowed and the failure answered.
      if (spool.destroyed || this.paused) return;
      this.paused = true;
      this.clientSocket.pause();
      const resume = () => {
        if (!this.paused) return;
        this.paused = false;
        this.clientSocket.resume();
      };
      spool.once('drain', resume);
      spool.once('close', resume);
    };
    spool.on('error', () => undefined); // settles done(); handled in createDatasetFromStoreWritableStream
    this.transfer = { spool, request, transferSyntaxUID, failure };
    return spool;
  }

  override createDatasetFromStoreWritableStream(writable: unknown, context: PresentationContext, callback: (dataset: Dataset) => void): void {
    const transfer = this.transfer;
    const answer = (outcome: Outcome) => {
      this.transfer = undefined;
      if (outcome.job) this.lastJob = outcome.job;
      if (transfer) this.outcomes.set(transfer.request, { transfer, outcome });
      try {
        callback(new Dataset({}, String(context.getAcceptedTransferSyntaxUid() ?? '')));
      } catch (err) {
        this.owner.log('error', `answering C-STORE on association ${this.id} failed: ${describe(err)}`);
      }
      this.owner.recordOutcome(this, transfer, outcome);
    };
    if (!transfer || transfer.spool !== writable) {
      answer({ status: StoreStatus.ProcessingFailure, reason: 'data set arrived without a C-STORE transfer in progress' });
      return;
    }
    transfer.spool.done().then(
      () => {
        if (transfer.failure) {
          transfer.spool.discard();
          return answer(transfer.failure);
        }
        answer(this.owner.fileInstance(this, transfer));
      },
      (err: unknown) => {
        transfer.spool.discard();
        answer(localFailure('cannot write the instance to disk', err));
      },
    ).catch((err: unknown) => this.owner.log('error', `C-STORE on association ${this.id}: ${describe(err)}`));
  }

  override cStoreRequest(request: CStoreRequest, callback: (response: dimseResponses.CStoreResponse) => void): void {
    try {
      const entry = this.outcomes.get(request);
      this.outcomes.delete(request);
      const outcome = entry?.outcome ?? { status: StoreStatus.ProcessingFailure, reason: 'no data set was received' };
      const response = dimseResponses.CStoreResponse.fromRequest(request);
      response.setStatus(outcome.status);
      if (outcome.status !== StoreStatus.Success && outcome.reason) {
        (response as unknown as ResponseWithComment).setErrorComment(errorComment(outcome.reason));
      }
      callback(response);
    } catch (err) {
      this.owner.log('error', `C-STORE response on association ${this.id} failed: ${describe(err)}`);
    }
  }

  // Query/retrieve and N-services are never negotiated; a peer that sends one anyway gets a refusal.
  override cFindRequest(request: dimseRequests.CFindRequest, callback: (responses: dimseResponses.CFindResponse[]) => void): void {
    this.refuse(() => dimseResponses.CFindResponse.fromRequest(request), (r) => callback([r]));
  }
  override cMoveRequest(request: dimseRequests.CMoveRequest, callback: (responses: dimseResponses.CMoveResponse[]) => void): void {
    this.refuse(() => dimseResponses.CMoveResponse.fromRequest(request), (r) => callback([r]));
  }
  override cGetRequest(request: dimseRequests.CGetRequest, callback: (responses: dimseResponses.CGetResponse[]) => void): void {
    this.refuse(() => dimseResponses.CGetResponse.fromRequest(request), (r) => callback([r]));
  }

  override cCancelRequest(): void {
    // nothing of ours is cancellable
  }

  /** Called by the owner when the SCP closes. */
  dispose(): void {
    this.ended = true;
    this.dropTransfer();
  }

  onSocketClosed(): void {
    try {
      this.dropTransfer();
      this.finish('closed');
      this.owner.associationEnded(this);
    } catch (err) {
      this.owner.log('error', `cleanup of association ${this.id} failed: ${describe(err)}`);
    }
  }

  private dropTransfer(): void {
    const transfer = this.transfer;
    this.transfer = undefined;
    if (transfer) transfer.spool.discard();
  }

  private finish(event: 'released' | 'aborted' | 'closed', reason?: string): void {
    if (this.ended) return;
    this.ended = true;
    if (this.accepted) this.emitAssociation(event, reason);
    // Association grouping completes the job at release, without waiting for the peer to hang up.
    this.owner.associationEnded(this);
  }

  private refuse<R extends { setStatus(status: number): void }>(make: () => R, send: (response: R) => void): void {
    try {
      const response = make();
      response.setStatus(0x0211); // unrecognized operation
      send(response);
    } catch (err) {
      this.owner.log('warn', `refusing a request on association ${this.id} failed: ${describe(err)}`);
    }
  }

  private negotiate(context: PresentationContext): void {
    const Result = dimseConstants.PresentationContextResult;
    const abstractSyntax = String(context.getAbstractSyntaxUid() ?? '');
    if (abstractSyntax !== VERIFICATION_SOP_CLASS && !isStorageAbstractSyntax(abstractSyntax)) {
      context.setResult(Result.RejectAbstractSyntaxNotSupported);
      return;
    }
    const chosen = chooseTransferSyntax(abstractSyntax, context.getTransferSyntaxUids() ?? []);
    if (chosen) context.setResult(Result.Accept, chosen);
    else context.setResult(Result.RejectTransferSyntaxesNotSupported);
  }

  private emitAssociation(event: AssociationEvent['event'], reason?: string): void {
    this.owner.emitSafely('association', {
      associationId: this.id,
      event,
      callingAE: this.callingAE,
      calledAE: this.calledAE,
      remoteAddress: this.remoteAddress,
      reason,
      stored: this.stored,
      rejected: this.rejected,
    });
  }

  /** After an A-ASSOCIATE-RJ the peer should close; if it does not, we do. */
  private hangUpSoon(): void {
    this.ended = true;
    const socket = this.clientSocket;
    socket.end();
    setTimeout(() => socket.destroy(), 2000).unref();
  }
}
