/** lib/ingest: grouping received or found instances into study jobs, and ingesting folders from disk. */
export {
  GROUPINGS, JobAssembler, MissingIdentityError, instanceInfoOf,
  type AssemblerOptions, type CompletedBy, type CompletedJob, type Grouping, type InstanceInfo, type JobSummary, type OpenJob,
  type SeriesSummary, type SourceContext,
} from './assembler';
export { FolderIngestError, ingestFolder, type FolderIngestOptions, type FolderIngestResult, type ReplacedFile, type SkippedFile } from './folder';
