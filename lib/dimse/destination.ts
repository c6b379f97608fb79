import { PolicyConfigError, validateAeTitle } from './policy';
import type { DestinationAddress } from './outbox';

/** The clara-dicom-destination editor's fields, as Node-RED stores them (numbers may arrive as text). */
export interface DestinationFields {
  name?: string;
  calledAE?: string;
  host?: string;
  port?: number | string;
  callingAE?: string;
  maxPdu?: number | string;
  connectTimeout?: number | string;
  pduTimeout?: number | string;
}

/** Clara DICOM Adapter's SCU AE title. */
export const DEFAULT_CALLING_AE = 'ClaraSCU';

function integer(value: number | string | undefined, what: string, fallback: number, min: number, max: number): number {
  if (value === undefined || value === null || value === '') return fallback;
  const n = typeof value === 'number' ? value : Number(String(value).trim());
  if (!Number.isInteger(n) || n < min || n > max) throw new PolicyConfigError(`${what} must be a whole number from ${min} to ${max}, not ${JSON.stringify(value)}`);
  return n;
}

/** Checks the fields and gives the address the outbox sends to. Throws PolicyConfigError naming the bad field. */
export function destinationFromFields(fields: DestinationFields, tls = false): DestinationAddress {
  const host = String(fields.host ?? '').trim();
  if (!host || !/^[A-Za-z0-9.:_-]+$/.test(host)) throw new PolicyConfigError(`host ${JSON.stringify(fields.host ?? '')} is not an address or host name`);
  const calledAE = validateAeTitle(String(fields.calledAE ?? ''), 'called AE title');
  const callingAE = validateAeTitle(String(fields.callingAE || DEFAULT_CALLING_AE), 'calling AE title');
  const port = integer(fields.port, 'port', 104, 1, 65535);
  const maxPduLength = integer(fields.maxPdu, 'max PDU', 65536, 4096, 16 * 1024 * 1024);
  const connectTimeoutMs = integer(fields.connectTimeout, 'connect timeout (s)', 10, 1, 3600) * 1000;
  const pduTimeoutMs = integer(fields.pduTimeout, 'PDU timeout (s)', 30, 1, 3600) * 1000;
  const name = String(fields.name ?? '').trim() || calledAE;
  const out: DestinationAddress = { name, calledAE, host, port, callingAE, maxPduLength, connectTimeoutMs, pduTimeoutMs };
  if (tls) out.tls = true;
  return out;
}

/** Parses `AE@host:port` (the CLI's --to). */
export function parseDestinationSpec(spec: string, callingAE = DEFAULT_CALLING_AE): DestinationAddress {
  const match = /^([^@]+)@(\[[^\]]+\]|[^:]+):(\d+)$/.exec(spec.trim());
  if (!match) throw new PolicyConfigError(`--to ${JSON.stringify(spec)} is not AE@host:port`);
  const host = match[2].replace(/^\[|\]$/g, '');
  return destinationFromFields({ name: `${match[1]}@${host}:${match[3]}`, calledAE: match[1], host, port: match[3], callingAE });
}
