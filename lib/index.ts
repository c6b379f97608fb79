/**
 * The framework-free engine behind the Node-RED nodes, for scripts and other hosts. Each area keeps
 * its own small API; import the area you need (`node-red-contrib-clara-dicom/dist/lib/volume`, ...) or
 * take the namespaces from here.
 */
export * as dicom from './dicom';
export * as dimse from './dimse';
export * as infer from './infer';
export * as ingest from './ingest';
export * as job from './job';
export * as phantom from './phantom';
export * as select from './select';
export * as volume from './volume';
