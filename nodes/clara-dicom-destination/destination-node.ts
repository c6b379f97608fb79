import type { Node } from 'node-red';
import type { ResolvedDestination } from '../../lib/dimse/outbox';

/** What a clara-dicom-destination config node offers the nodes that send to it. */
export interface ClaraDicomDestinationNode extends Node {
  /** The checked address with its TLS options; undefined when the settings are invalid. */
  destination?: ResolvedDestination;
  settingsError?: string;
}
