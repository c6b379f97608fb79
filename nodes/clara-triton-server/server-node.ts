import type { Node } from 'node-red';
import type { InferenceServer } from '../../lib/infer/server';

/** What the nodes that use a clara-triton-server config node get from it. */
export interface ClaraTritonServerNode extends Node {
  server?: InferenceServer;
  /** Why there is no server (bad settings), for the status of the nodes that use this one. */
  settingsError?: string;
}
