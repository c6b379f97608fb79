/** lib/dicom: reading, writing and decoding DICOM Part 10 files, with no framework attached. */
export { DicomDataset, type DicomElement } from './dataset';
export { entryForKeyword, entryForTag, keywordOf, resolveTag, type DictionaryEntry } from './dictionary';
export { DicomParseError, parseDicom, readDicomHeader, type DicomFile, type PixelDataLocation } from './reader';
export { decodeFrames, frameByteLength, isSupportedTransferSyntax, pixelModuleOf, splitFrames, type PixelModule } from './pixels';
export { dicomJsonKey, toDicomJson, type DicomJsonAttribute, type DicomJsonObject } from './json';
export { Tag, formatTag, parseTag } from './tags';
export { SopClass, TransferSyntax, generateUid, isValidUid } from './uids';
export {
  encodeDataset, encodeFileMeta, encodePart10, formatDecimalString, writeDicomFile, writeFileAtomic, writeJsonAtomic,
  type EncodeOptions, type WriteDataset, type WriteValue,
} from './writer';
