/** lib/dimse: the C-STORE SCP behind clara-dicom-in, its association policy, a plain C-STORE sender, and clara-scu-out's durable outbox. */
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
export { AssociationError, ScuAssociation, verifyPeer, type AssociationTarget, type DimseStatus, type NegotiatedContext, type ProposedContext } from './association';
export {
  OUTBOX_DIR, Outbox, contextsFor, describeStoreStatus, findTaskFiles, jobOutputFiles, loadTask,
  type DestinationAddress, type EnqueueRequest, type InstanceState, type OutboxEvents, type OutboxOptions, type OutboxProgress, type OutboxSnapshot,
  type OutboxTask, type ResolvedDestination, type TaskAttempt, type TaskInstance, type TaskState,
} from './outbox';
export { DEFAULT_CALLING_AE, destinationFromFields, parseDestinationSpec, type DestinationFields } from './destination';
