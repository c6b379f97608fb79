import type { Node, NodeAPI, NodeDef } from 'node-red';
import type { ConnectionOptions as TlsConnectionOptions } from 'node:tls';
import { verifyPeer } from '../../lib/dimse/association';
import { type DestinationFields, destinationFromFields } from '../../lib/dimse/destination';
import type { ResolvedDestination } from '../../lib/dimse/outbox';
import type { ClaraDicomDestinationNode } from './destination-node';

type ClaraDicomDestinationDef = NodeDef & DestinationFields & { tls?: string };

interface TlsConfigNode extends Node {
  addTLSOptions(options: TlsConnectionOptions): void;
}

const TYPE = 'clara-dicom-destination';

export = function register(RED: NodeAPI): void {
  /** DICOM TLS through a tls-config node: its CA, client certificate and key, server name and verify setting. */
  const tlsOptionsOf = (id: string | undefined): TlsConnectionOptions | undefined => {
    if (!id) return undefined;
    const tlsNode = RED.nodes.getNode(id) as TlsConfigNode | null;
    if (!tlsNode) throw new Error('the chosen TLS configuration does not exist');
    const options: TlsConnectionOptions = {};
    tlsNode.addTLSOptions(options);
    return options;
  };

  const resolve = (fields: ClaraDicomDestinationDef): ResolvedDestination => {
    const tlsOptions = tlsOptionsOf(fields.tls);
    const address = destinationFromFields(fields, tlsOptions !== undefined);
    return tlsOptions ? { ...address, tlsOptions } : address;
  };

  function ClaraDicomDestinationNode(this: ClaraDicomDestinationNode, config: ClaraDicomDestinationDef): void {
    RED.nodes.createNode(this, config);
    try {
      this.destination = resolve(config);
    } catch (err) {
      this.settingsError = (err as Error).message;
      this.error(`${TYPE} ${config.name || config.id}: ${this.settingsError}`);
    }
  }

  RED.nodes.registerType(TYPE, ClaraDicomDestinationNode);

  // "Verify" in the editor: C-ECHO with the unsaved settings.
  // It makes this server connect to a host the caller names: only users who may change flows.
  RED.httpAdmin.post(`/${TYPE}/verify`, RED.auth.needsPermission('flows.write'), async (req, res) => {
    const body = (req.body ?? {}) as ClaraDicomDestinationDef;
    let destination: ResolvedDestination;
    try {
      destination = resolve(body);
    } catch (err) {
      res.json({ ok: false, message: (err as Error).message });
      return;
    }
    const answer = await verifyPeer({
      host: destination.host, port: destination.port, calledAE: destination.calledAE, callingAE: destination.callingAE,
      maxPduLength: destination.maxPduLength, connectTimeoutMs: destination.connectTimeoutMs, pduTimeoutMs: destination.pduTimeoutMs,
      tls: destination.tlsOptions,
    });
    res.json({ ...answer, peer: `${destination.calledAE}@${destination.host}:${destination.port}${destination.tls ? ' (TLS)' : ''}`, callingAE: destination.callingAE });
  });
};
