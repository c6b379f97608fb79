/** lib/dimse: the C-STORE SCP behind clara-dicom-in, its association policy, and a plain C-STORE sender. */
export {
  StoreScp, StoreStatus,
  type AssociationEvent, type LogLevel, type RejectedInstance, type ScpLogger, type StoredInstance, type StoreScpEvents, type StoreScpOptions,
  type StoreScpStats,
} from './scp';
export {
  ACCEPTED_TRANSFER_SYNTAXES, PolicyConfigError, chooseTransferSyntax, decideAssociation, isStorageAbstractSyntax, parseAllowList,
  validateAeTitle, type AllowEntry,
} from './policy';
export { sendFiles, type SendResult, type SendTarget } from './scu';
export { freeLoopbackPort } from './ports';
