import { randomBytes } from 'node:crypto';

export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JpegBaseline: '1.2.840.10008.1.2.4.50',
  JpegExtended: '1.2.840.10008.1.2.4.51',
  JpegLossless: '1.2.840.10008.1.2.4.57',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  JpegLsNearLossless: '1.2.840.10008.1.2.4.81',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
  Jpeg2000: '1.2.840.10008.1.2.4.91',
  HtJpeg2000Lossless: '1.2.840.10008.1.2.4.201',
  HtJpeg2000LosslessRpcl: '1.2.840.10008.1.2.4.202',
  HtJpeg2000: '1.2.840.10008.1.2.4.203',
  RleLossless: '1.2.840.10008.1.2.5',
} as const;

export const SopClass = {
  Verification: '1.2.840.10008.1.1',
  CtImageStorage: '1.2.840.10008.5.1.4.1.1.2',
  EnhancedCtImageStorage: '1.2.840.10008.5.1.4.1.1.2.1',
  MrImageStorage: '1.2.840.10008.5.1.4.1.1.4',
  EnhancedMrImageStorage: '1.2.840.10008.5.1.4.1.1.4.1',
  SecondaryCaptureImageStorage: '1.2.840.10008.5.1.4.1.1.7',
  SegmentationStorage: '1.2.840.10008.5.1.4.1.1.66.4',
  RtStructureSetStorage: '1.2.840.10008.5.1.4.1.1.481.3',
} as const;

/**
 * The implementation class UID of this package. It lives under the UUID-derived "2.25" root so that
 * no organisational root is needed.
 */
export const ImplementationClassUID = '2.25.149176532874151128437460357283468701337';
export const ImplementationVersionName = 'CLARA_NR_010';

const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$/;

/** A DICOM UID: digits and dots, no leading zeros in a component, at most 64 characters. */
export function isValidUid(uid: string): boolean {
  return uid.length > 0 && uid.length <= 64 && UID_PATTERN.test(uid);
}

/**
 * A new UID. Without a root it is a "2.25." UUID-derived UID (ISO/IEC 9834-8); with one, the root
 * followed by as many random decimal digits as fit in 64 characters.
 */
export function generateUid(root?: string): string {
  if (!root) {
    const value = BigInt('0x' + randomBytes(16).toString('hex'));
    return `2.25.${value.toString()}`;
  }
  const prefix = root.endsWith('.') ? root : root + '.';
  if (!isValidUid(prefix.slice(0, -1))) throw new Error(`invalid UID root "${root}"`);
  const room = Math.min(64 - prefix.length, 39);
  if (room < 8) throw new Error(`UID root "${root}" is too long to leave room for a unique suffix`);
  let digits = BigInt('0x' + randomBytes(16).toString('hex')).toString().slice(0, room);
  digits = digits.replace(/^0+/, '') || '1';
  return prefix + digits;
}
