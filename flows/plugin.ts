/**
 * The importer inside Node-RED: a plugin whose editor half adds "Import › Clara pipeline…" (plugin.html)
 * and whose runtime half serves the conversion, so the editor and the CLI share one converter. The
 * endpoint needs the `flows.write` permission: it turns YAML into nodes a user is about to deploy. The
 * converter (and the YAML parser under it) loads on the first request, not when Node-RED starts.
 */
import type { NodeAPI } from 'node-red';
import type { DestinationAddress } from './mapping';

interface ImportRequest {
  yaml?: unknown;
  destinations?: Record<string, DestinationAddress>;
  dicomPort?: unknown;
  triton?: unknown;
}

/** Node-RED's plugin API, which @types/node-red does not describe yet. */
type PluginAPI = NodeAPI & { plugins: { registerPlugin(id: string, definition: { type: string }): void } };

export = function register(RED: PluginAPI): void {
  RED.plugins.registerPlugin('clara-pipeline-import', { type: 'clara-dicom-import' });
  RED.httpAdmin.post('/clara-dicom/import', RED.auth.needsPermission('flows.write'), async (req, res) => {
    const body = (req.body ?? {}) as ImportRequest;
    if (typeof body.yaml !== 'string' || body.yaml.trim() === '') {
      res.status(400).json({ error: 'no pipeline YAML in the request' });
      return;
    }
    const triton = body.triton;
    // Express does not catch a rejected handler, so nothing here may throw past the try.
    let PipelineError: typeof import('./pipeline').PipelineError | undefined;
    try {
      const [{ pipelineToFlow }, pipeline] = await Promise.all([import('./mapping'), import('./pipeline')]);
      PipelineError = pipeline.PipelineError;
      const { parsePipeline } = pipeline;
      const result = pipelineToFlow(parsePipeline(body.yaml), {
        destinations: body.destinations,
        dicomPort: Number.isInteger(body.dicomPort) ? (body.dicomPort as number) : undefined,
        triton: triton && typeof triton === 'object' ? (triton as { protocol: 'grpc' | 'http'; host: string; port: number }) : 'embedded',
      });
      res.json(result);
    } catch (err) {
      if (PipelineError && err instanceof PipelineError) {
        res.status(400).json({ error: err.message, line: err.position?.line, column: err.position?.column });
        return;
      }
      RED.log.error(`clara-dicom import: ${(err as Error).stack ?? String(err)}`);
      res.status(500).json({ error: `the pipeline could not be converted: ${(err as Error).message}` });
    }
  });
};
