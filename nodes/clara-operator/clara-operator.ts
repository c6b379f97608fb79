import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { statusAtDeploy, statusLine } from '../status-text';

/** What the importer keeps of a Clara operator this package has no node for. */
interface ClaraOperatorDef extends NodeDef {
  image?: string;
  tag?: string;
  command?: string[];
}

const TYPE = 'clara-operator';

/**
 * A Clara operator imported from a pipeline that this package cannot run (a container of someone else's):
 * it keeps the container spec for export, says so in its status and the log, and passes each message on
 * unchanged so the rest of the flow still runs.
 */
export = function register(RED: NodeAPI): void {
  function ClaraOperatorNode(this: Node, config: ClaraOperatorDef): void {
    RED.nodes.createNode(this, config);
    const image = `${config.image || '?'}${config.tag ? `:${config.tag}` : ''}`;
    this.warn(`${TYPE} "${config.name || config.id}": the Clara operator ${image} is not executable here; messages pass through unchanged`);
    statusAtDeploy(RED, this, { fill: 'yellow', shape: 'ring', text: statusLine(RED._('clara-operator.status.notExecutable', { image })) });
    this.on('input', (msg: NodeMessageInFlow, send, done) => {
      send(msg);
      done();
    });
  }
  RED.nodes.registerType(TYPE, ClaraOperatorNode);
};
