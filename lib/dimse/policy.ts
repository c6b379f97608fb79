import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { TransferSyntax } from '../dicom/uids';

/** One allowed peer: a calling AE title, optionally bound to the host it must connect from. */
export interface AllowEntry {
  aeTitle: string;
  /** IP address or host name; when set, the peer's address must be one of its addresses. */
  host?: string;
}

/** Raised for an allow-list or AE title that cannot be used; the message names the bad entry. */
export class PolicyConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PolicyConfigError';
  }
}

/** AE titles: 1-16 characters of the default repertoire, no backslash or control characters (PS3.5 6.2). */
export function validateAeTitle(aeTitle: string, what = 'AE title'): string {
  const trimmed = aeTitle.trim();
  if (trimmed.length === 0 || trimmed.length > 16 || /[\\\x00-\x1f\x7f-\uffff]/.test(trimmed)) {
    throw new PolicyConfigError(`${what} ${JSON.stringify(aeTitle)} is not valid: 1 to 16 printable ASCII characters, no backslash`);
  }
  return trimmed;
}

/**
 * Parses an allow-list written one peer per line (commas also separate), each "AE" or "AE@host".
 * Blank lines and lines starting with "#" are ignored. An empty result means "accept any calling AE".
 */
export function parseAllowList(text: string): AllowEntry[] {
  const entries: AllowEntry[] = [];
  const lines = text.split(/[\r\n,]+/);
  for (const raw of lines) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf('@');
    const aeTitle = validateAeTitle(at >= 0 ? line.slice(0, at) : line, 'allow-list AE title');
    const host = at >= 0 ? line.slice(at + 1).trim() : undefined;
    if (host !== undefined && !/^[A-Za-z0-9.:_-]+$/.test(host)) {
      throw new PolicyConfigError(`allow-list entry ${JSON.stringify(line)}: host ${JSON.stringify(host)} is not an address or host name`);
    }
    entries.push(host ? { aeTitle, host } : { aeTitle });
  }
  return entries;
}

/** "::ffff:127.0.0.1" (an IPv4 peer on a dual-stack socket) compares equal to "127.0.0.1". */
export function normalizeAddress(address: string | undefined): string {
  if (!address) return '';
  const lower = address.toLowerCase();
  return lower.startsWith('::ffff:') && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

/** An allow-list entry with its host resolved to addresses once, so checking a peer needs no DNS. */
export interface ResolvedAllowEntry {
  aeTitle: string;
  host?: string;
  addresses?: Set<string>;
}

/** Resolves host names of the allow-list. A name that does not resolve matches no peer (and is reported). */
export async function resolveAllowList(entries: readonly AllowEntry[], warn: (message: string) => void): Promise<ResolvedAllowEntry[]> {
  const out: ResolvedAllowEntry[] = [];
  for (const entry of entries) {
    if (!entry.host) {
      out.push({ aeTitle: entry.aeTitle });
      continue;
    }
    const addresses = new Set<string>();
    if (isIP(entry.host)) addresses.add(normalizeAddress(entry.host));
    else {
      try {
        for (const a of await lookup(entry.host, { all: true })) addresses.add(normalizeAddress(a.address));
      } catch (err) {
        warn(`allow-list host ${entry.host} (for ${entry.aeTitle}) does not resolve (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): that entry matches no peer`);
      }
    }
    out.push({ aeTitle: entry.aeTitle, host: entry.host, addresses });
  }
  return out;
}

export type AssociationDecision =
  | { accept: true }
  | { accept: false; reason: 'calling-ae-not-recognized' | 'called-ae-not-recognized'; message: string };

/**
 * Whether to accept an association. An empty allow-list accepts every calling AE; the called AE must be
 * ours unless `acceptAnyCalledAE`. AE titles compare exactly after trimming spaces (they are case-sensitive).
 */
export function decideAssociation(
  peer: { callingAE: string; calledAE: string; remoteAddress: string },
  policy: { aeTitle: string; acceptAnyCalledAE: boolean; allow: readonly ResolvedAllowEntry[] },
): AssociationDecision {
  const calledAE = peer.calledAE.trim();
  const callingAE = peer.callingAE.trim();
  if (!policy.acceptAnyCalledAE && calledAE !== policy.aeTitle) {
    return { accept: false, reason: 'called-ae-not-recognized', message: `called AE "${calledAE}" is not this SCP's AE title "${policy.aeTitle}"` };
  }
  if (policy.allow.length === 0) return { accept: true };
  const address = normalizeAddress(peer.remoteAddress);
  const byTitle = policy.allow.filter((e) => e.aeTitle === callingAE);
  if (byTitle.length === 0) {
    return { accept: false, reason: 'calling-ae-not-recognized', message: `calling AE "${callingAE}" (from ${address}) is not in the allow-list` };
  }
  if (byTitle.some((e) => !e.addresses || e.addresses.has(address))) return { accept: true };
  return {
    accept: false,
    reason: 'calling-ae-not-recognized',
    message: `calling AE "${callingAE}" is allowed only from ${byTitle.map((e) => e.host).join(', ')}, not from ${address}`,
  };
}

export const VERIFICATION_SOP_CLASS = '1.2.840.10008.1.1';

/**
 * Services that are not storage, as UID roots: a root excludes itself and every UID below it. Everything
 * else is accepted as a storage SOP class (private ones included), because a PACS may send any IOD and
 * we store it as received.
 */
const NON_STORAGE_ROOTS = [
  '1.2.840.10008.1.2', // transfer syntaxes, never an abstract syntax
  '1.2.840.10008.1.3.10', // Media Storage Directory (DICOMDIR)
  '1.2.840.10008.1.20', // storage commitment
  '1.2.840.10008.1.40', // procedural event logging
  '1.2.840.10008.1.42', // substance administration logging
  '1.2.840.10008.3.1', // application context, detached management, MPPS
  '1.2.840.10008.5.1.1', // print management
  '1.2.840.10008.5.1.4.1.2', // query/retrieve information models
  '1.2.840.10008.5.1.4.20', // composite instance root / retrieve without bulk data
  '1.2.840.10008.5.1.4.31', // modality worklist
  '1.2.840.10008.5.1.4.32', // general purpose worklist
  '1.2.840.10008.5.1.4.33', // instance availability notification
  '1.2.840.10008.5.1.4.34.6', // unified procedure step
  '1.2.840.10008.5.1.4.37', // general relevant patient information query
  '1.2.840.10008.5.1.4.38.2', '1.2.840.10008.5.1.4.38.3', '1.2.840.10008.5.1.4.38.4', // hanging protocol find/move/get
  '1.2.840.10008.5.1.4.39.2', '1.2.840.10008.5.1.4.39.3', '1.2.840.10008.5.1.4.39.4', // color palette find/move/get
  '1.2.840.10008.5.1.4.41', '1.2.840.10008.5.1.4.42', // product characteristics / substance approval query
];

export function isStorageAbstractSyntax(uid: string): boolean {
  if (uid === VERIFICATION_SOP_CLASS || uid.length === 0) return false;
  return !NON_STORAGE_ROOTS.some((root) => uid === root || uid.startsWith(root + '.'));
}

/** Every transfer syntax a PACS sends that lib/dicom can later read; instances are stored as received. */
export const ACCEPTED_TRANSFER_SYNTAXES: ReadonlySet<string> = new Set(Object.values(TransferSyntax));

/**
 * The transfer syntax to accept from a context's proposal: the peer's first acceptable one, except that
 * Explicit VR Little Endian wins over Implicit when both are offered (as dcmtk's storescp prefers).
 */
export function chooseTransferSyntax(abstractSyntax: string, proposed: readonly string[]): string | undefined {
  const acceptable = abstractSyntax === VERIFICATION_SOP_CLASS
    ? proposed.filter((ts) => ts === TransferSyntax.ImplicitVRLittleEndian || ts === TransferSyntax.ExplicitVRLittleEndian)
    : proposed.filter((ts) => ACCEPTED_TRANSFER_SYNTAXES.has(ts));
  if (acceptable.length === 0) return undefined;
  if (acceptable[0] === TransferSyntax.ImplicitVRLittleEndian && acceptable.includes(TransferSyntax.ExplicitVRLittleEndian)) {
    return TransferSyntax.ExplicitVRLittleEndian;
  }
  return acceptable[0];
}
