import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Node, NodeAPI, NodeDef, NodeMessageInFlow } from 'node-red';
import { type JobRef, jobFilePath, jobRefOf, messagePath, operatorDir, recordJobError, updateJob } from '../../lib/job';
import { type CompiledRules, type RuleProblem, RulesError, type RulesSource, compileRules, decodeRulesText, loadRules } from '../../lib/select/rules';
import { readDicomMetadata, runSelection, type SelectionSummary, selectionSummaryOf } from '../../lib/select/run';
import { selectSeries } from '../../lib/select/match';
import { DICOM_METADATA_FILE } from '../../lib/volume/parse';
import { errorStatus, statusAtDeploy, statusLine } from '../status-text';

/** The editor's settings, as Node-RED stores them. */
interface ClaraSeriesSelectorDef extends NodeDef {
  rulesType?: string;
  rules?: string;
  allMatched?: boolean;
  sortBySopInstanceCount?: boolean;
}

const TYPE = 'clara-series-selector';
const STAGE = 'select';
/** The job's folder for this operator's output. */
const SELECTOR_DIR = 'selector';
/** The parser's folder in a job, used when msg.parser does not say where it wrote. */
const PARSER_DIR = 'parser';
const RULES_TYPES = ['json', 'base64', 'file'] as const;
type RulesType = (typeof RULES_TYPES)[number];

/** The last job each node handled, for the editor's preview (kept across redeploys: same node id). */
const lastJobs = new Map<string, { job: JobRef; parserDir: string; at: string }>();
/**
 * Rules each deployed node read from a file, by node id. The editor endpoints never read a file
 * themselves: they serve users with read permission only, and must not tell them what lies where on
 * the server. A file is checked when the flow is deployed; its preview uses what the node read.
 */
const deployedFileRules = new Map<string, { path: string; rules: CompiledRules }>();

/** A relative rules file is taken from Node-RED's user directory, where flows.json and settings.js live. */
function rulesSourceOf(config: { rulesType?: unknown; rules?: unknown }, userDir: string): RulesSource {
  const kind = (config.rulesType ?? 'json') as RulesType;
  if (!RULES_TYPES.includes(kind)) throw new RulesError([{ reason: `the rules type must be one of ${RULES_TYPES.join(', ')}, not ${JSON.stringify(config.rulesType)}` }]);
  const text = typeof config.rules === 'string' ? config.rules : '';
  return { kind, text: kind === 'file' && text.trim() !== '' ? resolve(userDir, text.trim()) : text };
}

function compileFromConfig(config: { rulesType?: unknown; rules?: unknown; allMatched?: unknown; sortBySopInstanceCount?: unknown }, userDir: string): CompiledRules {
  return loadRules(rulesSourceOf(config, userDir), { allMatched: config.allMatched === true, sortBySopInstanceCount: config.sortBySopInstanceCount === true });
}

/** msg.rules: a rule object, or JSON / Base64 text; it replaces the node's rules for that message. */
function compileMessageRules(rules: unknown, defaults: { allMatched: boolean; sortBySopInstanceCount: boolean }): CompiledRules {
  if (typeof rules === 'string') return compileRules(decodeRulesText(rules, 'auto'), defaults);
  return compileRules(rules, defaults);
}

/** The parser's output folder: msg.parser.dir when the parser sent one, else the job's parser/ folder. */
function parserDirOf(msg: NodeMessageInFlow, job: JobRef): string {
  const dir = messagePath(msg, 'parser', 'dir') ?? join(job.dir, PARSER_DIR);
  if (!existsSync(join(dir, DICOM_METADATA_FILE))) throw new Error(`no ${DICOM_METADATA_FILE} in ${dir}: run clara-dicom-parser on the job first`);
  return dir;
}

function problemsOf(err: unknown): RuleProblem[] {
  return err instanceof RulesError ? err.problems : [{ reason: (err as Error).message }];
}

export = function register(RED: NodeAPI): void {
  const userDir = () => String((RED.settings as { userDir?: string }).userDir ?? process.cwd());
  function ClaraSeriesSelectorNode(this: Node, config: ClaraSeriesSelectorDef): void {
    RED.nodes.createNode(this, config);
    const node = this;
    const defaults = { allMatched: config.allMatched === true, sortBySopInstanceCount: config.sortBySopInstanceCount === true };
    let rules: CompiledRules | undefined;
    let rulesError: string | undefined;
    try {
      rules = compileFromConfig(config, userDir());
      if (config.rulesType === 'file') deployedFileRules.set(node.id, { path: rulesSourceOf(config, userDir()).text, rules });
      for (const warning of rules.warnings) node.warn(`${TYPE}: ${warning}`);
      if (rules.selectAll) statusAtDeploy(RED, node, { fill: 'grey', shape: 'ring', text: RED._('clara-series-selector.status.selectAll') });
      else node.status({});
    } catch (err) {
      rulesError = `invalid selection rules: ${(err as Error).message}`;
      node.error(`${TYPE}: ${rulesError}`);
      statusAtDeploy(RED, node, errorStatus(rulesError));
    }

    node.on('input', (msg: NodeMessageInFlow, send, done) => {
      let job: JobRef | undefined;
      try {
        job = jobRefOf(msg as { job?: unknown });
        const parserDir = parserDirOf(msg, job);
        lastJobs.set(node.id, { job, parserDir, at: new Date().toISOString() });
        const override = (msg as { rules?: unknown }).rules;
        let active: CompiledRules;
        if (override !== undefined) {
          try {
            active = compileMessageRules(override, defaults);
          } catch (err) {
            throw new Error(`msg.rules: ${(err as Error).message}`);
          }
        } else if (rules) {
          active = rules;
        } else {
          throw new Error(rulesError ?? 'no rules');
        }
        node.status({ fill: 'blue', shape: 'dot', text: RED._('clara-series-selector.status.selecting') });
        const run = runSelection(parserDir, operatorDir(job.dir, SELECTOR_DIR), active);
        const summary = selectionSummaryOf(run, active.warnings);
        updateJob(job.dir, (r) => {
          r.state = run.report.matched ? 'selected' : 'no-match';
          r.timestamps.selected = new Date().toISOString();
          r.counts.selectedSeries = run.report.selections.reduce((n, s) => n + s.selected.length, 0);
        });
        (msg as NodeMessageInFlow & { selection: SelectionSummary }).selection = summary;
        if (run.report.matched) {
          const picked = summary.selections.flatMap((s) => s.series.map((x) => x.seriesDescription || x.seriesInstanceUID));
          const names = `${picked.slice(0, 2).join(', ')}${picked.length > 2 ? ', …' : ''}`;
          node.status({ fill: 'green', shape: 'dot', text: statusLine(RED._('clara-series-selector.status.selected', { count: picked.length, names })) });
          send([msg, null]);
        } else {
          const names = summary.unmatched.map((u) => u.name).join(', ');
          node.status({ fill: 'yellow', shape: 'ring', text: statusLine(RED._('clara-series-selector.status.noMatch', { names })) });
          node.warn(`${TYPE}: job ${job.id}: no series matched selection(s) ${names}; see ${run.reportFile}`);
          send([null, msg]);
        }
        done();
      } catch (err) {
        const message = (err as Error).message;
        if (job && existsSync(jobFilePath(job.dir))) recordJobError(job.dir, STAGE, message, false);
        node.status(errorStatus(message));
        if ((err as Error).stack) node.debug((err as Error).stack);
        done(new Error(`${TYPE}: ${job ? `job ${job.id}: ` : ''}${message}`));
      }
    });

    node.on('close', (removed: boolean, done: () => void) => {
      deployedFileRules.delete(node.id);
      if (removed) lastJobs.delete(node.id);
      node.status({});
      done();
    });
  }

  RED.nodes.registerType(TYPE, ClaraSeriesSelectorNode);

  // The editor checks rules as they are typed, and previews them against the last job the node saw.
  // Both take the unsaved editor values, so nothing has to be deployed first.
  const readPermission = RED.auth.needsPermission(`${TYPE}.read`);
  RED.httpAdmin.post(`/${TYPE}/validate`, readPermission, (req, res) => {
    if ((req.body ?? {}).rulesType === 'file') {
      res.json({ ok: true, deferred: true, warnings: ['a rules file is read, and checked, when the flow is deployed'] });
      return;
    }
    try {
      const compiled = compileFromConfig(req.body ?? {}, userDir());
      res.json({ ok: true, selectAll: compiled.selectAll, selections: compiled.selections.map((s) => s.name), warnings: compiled.warnings });
    } catch (err) {
      res.json({ ok: false, message: (err as Error).message, problems: problemsOf(err) });
    }
  });
  RED.httpAdmin.post(`/${TYPE}/:id/preview`, readPermission, (req, res) => {
    const last = lastJobs.get(String(req.params.id));
    if (!last) {
      res.status(404).json({ error: 'this node has not handled a job yet: deploy the flow and send a study through it' });
      return;
    }
    let compiled: CompiledRules;
    try {
      if ((req.body ?? {}).rulesType === 'file') {
        const deployed = deployedFileRules.get(String(req.params.id));
        const asked = rulesSourceOf(req.body, userDir()).text;
        if (!deployed || deployed.path !== asked) throw new Error('a rules file is previewed as the node read it: deploy the flow first');
        compiled = deployed.rules;
      } else {
        compiled = compileFromConfig(req.body ?? {}, userDir());
      }
    } catch (err) {
      res.status(400).json({ error: (err as Error).message, problems: problemsOf(err) });
      return;
    }
    try {
      const report = selectSeries(readDicomMetadata(last.parserDir), compiled);
      res.json({ job: { id: last.job.id, studyInstanceUID: last.job.studyInstanceUID, at: last.at }, warnings: compiled.warnings, report });
    } catch (err) {
      res.status(410).json({ error: `the last job (${last.job.id}) can no longer be read: ${(err as Error).message}` });
    }
  });
};
