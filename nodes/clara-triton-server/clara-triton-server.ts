import type { Node, NodeAPI, NodeDef } from 'node-red';
import { type InferenceServer, type ServerFields, connectInferenceServer, serverSettingsFromFields } from '../../lib/infer/server';
import type { ClaraTritonServerNode } from './server-node';

/** The editor's settings, as Node-RED stores them. */
type ClaraTritonServerDef = NodeDef & ServerFields;


interface TlsConfigNode extends Node {
  addTLSOptions(options: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string }): void;
}

const TYPE = 'clara-triton-server';

export = function register(RED: NodeAPI): void {
  const userDir = () => String((RED.settings as { userDir?: string }).userDir ?? process.cwd());
  const tlsOptionsOf = (id: string | undefined) => {
    if (!id) return undefined;
    const tlsNode = RED.nodes.getNode(id) as TlsConfigNode | null;
    if (!tlsNode) throw new Error('the chosen TLS configuration does not exist');
    const options: { ca?: Buffer; cert?: Buffer; key?: Buffer; servername?: string } = {};
    tlsNode.addTLSOptions(options);
    return options;
  };

  function ClaraTritonServerNode(this: ClaraTritonServerNode, config: ClaraTritonServerDef): void {
    RED.nodes.createNode(this, config);
    try {
      this.server = connectInferenceServer(serverSettingsFromFields(config, config.mode === 'triton' ? tlsOptionsOf(config.tls) : undefined, userDir()));
    } catch (err) {
      this.settingsError = (err as Error).message;
      this.error(`${TYPE}: ${this.settingsError}`);
    }
    this.on('close', (done: () => void) => {
      const server = this.server;
      this.server = undefined;
      (server ? server.close() : Promise.resolve()).finally(done);
    });
  }

  RED.nodes.registerType(TYPE, ClaraTritonServerNode);

  // "Test connection" in the editor: the unsaved settings, and optionally a model to check.
  // It makes this server connect to a host the caller names: only users who may change flows.
  RED.httpAdmin.post(`/${TYPE}/test`, RED.auth.needsPermission('flows.write'), async (req, res) => {
    const body = (req.body ?? {}) as ClaraTritonServerDef & { model?: string; version?: string };
    let server: InferenceServer;
    try {
      server = connectInferenceServer(serverSettingsFromFields({ ...body, retries: 0 }, body.mode === 'triton' ? tlsOptionsOf(body.tls) : undefined, userDir()));
    } catch (err) {
      res.json({ ok: false, message: (err as Error).message });
      return;
    }
    try {
      const model = typeof body.model === 'string' && body.model.trim() ? body.model.trim() : undefined;
      const health = await server.health(model, typeof body.version === 'string' ? body.version : undefined);
      let inputs: Array<{ name: string; datatype: string; shape: number[] }> | undefined;
      let outputs: typeof inputs;
      if (model && health.modelReady) {
        const handle = await server.model(model, body.version || undefined);
        inputs = handle.metadata.inputs;
        outputs = handle.metadata.outputs;
      }
      const ok = health.live && (model ? health.modelReady === true : health.ready);
      res.json({ ok, description: server.description, ...health, inputs, outputs });
    } catch (err) {
      res.json({ ok: false, description: server.description, message: (err as Error).message });
    } finally {
      await server.close();
    }
  });
};
