import type { Node, NodeAPI, NodeStatus } from 'node-red';

/** RED._ of a node's module: looks "<type>.status.…" up in that node's message catalogue. */
export type Translate = (key: string, params?: Record<string, string | number>) => string;

/** What fits under a node in the editor; the log and the catch node get the whole message. */
export const STATUS_TEXT_MAX = 60;

/**
 * A status line from an error message: its first line only (a message that carries a stack or a
 * peer's multi-line answer must not fill the canvas), long absolute paths cut to their last two parts
 * (the job folder's own layout says what is missing; the log has the whole path), then cut to fit,
 * with an ellipsis when cut.
 */
export function statusLine(message: string, max = STATUS_TEXT_MAX): string {
  const first = message.split(/\r?\n/, 1)[0].trim().replace(/(?:\/[^\s/:]+){3,}/g, (path) => `…/${path.split('/').slice(-2).join('/')}`);
  return first.length > max ? `${first.slice(0, max - 1)}…` : first;
}

/** The red status of a failure: the error's message, shortened. */
export function errorStatus(message: string): NodeStatus {
  return { fill: 'red', shape: 'ring', text: statusLine(message) };
}

interface DeployStatus {
  node: Node;
  status: NodeStatus;
  superseded: boolean;
}
/** Per runtime (its events): statuses set while deploying, by node id, until the flows have started. */
const deployStatuses = new WeakMap<object, Map<string, DeployStatus>>();

/**
 * A status set while the flow is deployed (in a node's constructor) reaches the editor but no Status
 * node: Node-RED lists a flow's Status nodes only once every node of it is created. This sets the status
 * now, and again when the flows have started (on flows with a Status node) unless the node has set
 * another since, so a Status node sees a deploy-time error or "not executable here" too. One pair of
 * runtime listeners serves every node.
 */
export function statusAtDeploy(RED: NodeAPI, node: Node, status: NodeStatus): void {
  let pending = deployStatuses.get(RED.events);
  if (!pending) {
    const byId = new Map<string, DeployStatus>();
    deployStatuses.set(RED.events, byId);
    RED.events.on('node-status', (event: { id?: string; status?: unknown }) => {
      const entry = event?.id ? byId.get(event.id) : undefined;
      if (entry && event.status !== entry.status) entry.superseded = true;
    });
    RED.events.on('flows:started', () => {
      const started = [...byId.values()];
      byId.clear();
      // Only where a Status node can hear it: the editor has the status already.
      const watched = new Set<string>();
      RED.nodes.eachNode((def) => {
        if (def.type === 'status') watched.add(String((def as { z?: string }).z));
      });
      for (const entry of started) if (!entry.superseded && watched.has(String(entry.node.z))) entry.node.status(entry.status);
    });
    pending = byId;
  }
  const byId = pending;
  byId.set(node.id, { node, status, superseded: false });
  node.on('close', () => {
    if (byId.get(node.id)?.node === node) byId.delete(node.id);
  });
  node.status(status);
}
