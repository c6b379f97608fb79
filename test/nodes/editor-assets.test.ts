import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { type HeadlessRed, startHeadlessRed } from '../support/headless-red';
import { delay, scratchDir } from '../support/tools';

/**
 * What the editor and the runtime need of each node type besides its code: help in Node-RED's format,
 * a message catalogue holding every label and status key the node uses, its own icon, the shared
 * palette category and colour, and edit-form defaults whose validators turn bad values red. Read from
 * the source tree (what the package ships); the editor script is run against a stand-in RED to get
 * the very definition the editor registers.
 */

const ROOT = join(__dirname, '..', '..', '..');
const PALETTE = { category: 'Clara DICOM', color: '#8cc152' };
const CONFIG_TYPES = new Set(['clara-triton-server', 'clara-dicom-destination']);

interface Default {
  value?: unknown;
  required?: boolean;
  type?: string;
  validate?: (this: Record<string, unknown>, value: unknown, options?: unknown) => unknown;
}
interface EditorDefinition {
  category?: string;
  color?: string;
  icon?: string;
  defaults?: Record<string, Default>;
}

const nodeTypes = Object.keys((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { 'node-red': { nodes: Record<string, string> } })['node-red'].nodes);

const source = (type: string, file: string) => join(ROOT, 'nodes', type, file);
const read = (path: string) => readFileSync(path, 'utf8');

/** A key "a.b.c" in a catalogue, or undefined. */
function lookUp(catalogue: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((at, part) => (at && typeof at === 'object' ? (at as Record<string, unknown>)[part] : undefined), catalogue);
}

const nodeRedCatalogue = JSON.parse(read(require.resolve('@node-red/nodes/locales/en-US/messages.json'))) as unknown;
function catalogueOf(type: string): unknown {
  return JSON.parse(read(source(type, join('locales', 'en-US', `${type}.json`))));
}
/** A key as the editor resolves it: "node-red:…" in Node-RED's own catalogue, anything else in the node's. */
function resolves(type: string, key: string): boolean {
  if (key.startsWith('node-red:')) return typeof lookUp(nodeRedCatalogue, key.slice('node-red:'.length)) === 'string';
  return typeof lookUp(catalogueOf(type), key) === 'string';
}

/** Runs the editor script of a node file against a stand-in RED and returns what it registers. */
function editorDefinitions(file: string): Record<string, EditorDefinition> {
  const registered: Record<string, EditorDefinition> = {};
  const scripts = [...read(file).matchAll(/<script type="text\/javascript">([\s\S]*?)<\/script>/g)].map((m) => m[1]);
  const stub: () => unknown = () => new Proxy(stub, { get: (_t, p) => (p === 'length' ? 0 : stub()), apply: () => stub() });
  const known: Record<string, unknown> = {
    nodes: { registerType: (type: string, def: EditorDefinition) => (registered[type] = def) },
    validators: {
      number: () => (v: unknown) => v === '' || !Number.isNaN(Number(v)),
      regex: (re: RegExp) => (v: unknown) => re.test(String(v)),
      typedInput: () => () => true,
    },
    _: (key: string) => key,
    plugins: { registerPlugin: () => undefined },
    actions: { add: () => undefined },
    menu: { addItem: () => undefined },
    events: { on: () => undefined },
  };
  // Whatever else an editor script touches at load (RED.comms, RED.view…) is a do-nothing stand-in.
  const RED = new Proxy(known, { get: (target, p) => (typeof p === 'string' && p in target ? target[p] : stub()) });
  for (const script of scripts) runInNewContext(script, { RED, $: stub(), jQuery: stub(), window: {}, document: stub(), console });
  return registered;
}

/** Whether the editor marks a value valid: Node-RED takes true as valid, false or a message as invalid. */
function valid(definition: EditorDefinition, field: string, value: unknown): boolean {
  const defaults = definition.defaults ?? {};
  const spec = defaults[field];
  const props: Record<string, unknown> = Object.fromEntries(Object.entries(defaults).map(([k, d]) => [k, d.value]));
  props[field] = value;
  if (spec.required && (value === '' || value === undefined || value === null)) return false;
  return spec.validate ? spec.validate.call(props, value, {}) === true : true;
}

/** Values each form must refuse: a typing slip per node, as the issue asks ("invalid values show red"). */
const INVALID: Record<string, Record<string, unknown[]>> = {
  'clara-dicom-in': { aeTitle: ['', 'THIS_AE_TITLE_IS_TOO_LONG', 'BACK\\SLASH'], port: ['70000', '-1', 'abc', '1.5'], studyTimeout: ['0', 'x'], maxPdu: ['100'] },
  'clara-dicom-parser': { format: ['png'], spacingPolicy: ['ignore'] },
  'clara-series-selector': { rules: ['{not json'] },
  'clara-triton-server': { mode: ['docker'], port: ['70000', 'x'], deadline: ['-1'] },
  'clara-triton-infer': { model: ['', 'has space'], roi: ['', '64,64,abc'], overlap: ['1', 'x'], swBatchSize: ['0'] },
  'clara-operator': { image: [''] },
  'clara-seg-writer': { labels: ['', '[]', 'not json'], contentLabel: ['lower case'], seriesNumber: ['x'], uidRoot: ['1.2.abc'] },
  'clara-dicom-destination': { name: ['', 'has space'], calledAE: ['', 'THIS_AE_TITLE_IS_TOO_LONG'], host: ['', 'bad host'], port: ['0', '70000'] },
  'clara-scu-out': { maxAttempts: ['0', 'x'], concurrency: ['33'], backoff: ['-1'] },
  'clara-rtstruct-writer': { labels: ['[]', '["a","a"]'], tolerance: ['1'], structureSetLabel: ['LONGER_THAN_16_CHARACTERS'] },
  'clara-render-register': { timeout: ['0', '4000', 'x'], mode: ['other'] },
};

/** Status keys a node's .ts names: "<type>.status.…" literally, plus the shared queue's when it uses it. */
function statusKeys(type: string): string[] {
  const code = read(source(type, `${type}.ts`));
  const keys = [...code.matchAll(new RegExp(`['"\`](${type.replace(/-/g, '\\-')}\\.status\\.[A-Za-z0-9_.]+)['"\`]`, 'g'))].map((m) => m[1]);
  if (/workJobsInOrder\(/.test(code)) {
    const queue = read(join(ROOT, 'nodes', 'job-queue.ts'));
    keys.push(...[...queue.matchAll(/`\$\{options\.type\}\.(status\.[A-Za-z0-9_.]+)`/g)].map((m) => `${type}.${m[1]}`));
  }
  return [...new Set(keys)];
}

describe('editor assets of every node type: help, catalogue, icon, palette, form validation', () => {
  it('lists the node types the checks cover', () => {
    assert.ok(nodeTypes.length >= 11, `package.json lists ${nodeTypes.length} node types`);
    assert.deepEqual(Object.keys(INVALID).sort(), [...nodeTypes].sort(), 'every node type has values its form must refuse');
  });

  for (const type of nodeTypes) {
    describe(type, () => {
      const isConfig = CONFIG_TYPES.has(type);

      it('has help in Node-RED\'s format in locales/en-US, and none left in the editor file', () => {
        const file = source(type, join('locales', 'en-US', `${type}.html`));
        assert.ok(existsSync(file), `${file} is missing`);
        const help = read(file);
        assert.match(help, new RegExp(`<script type="text/html" data-help-name="${type}">`));
        const sections = [...help.matchAll(/<h3>([^<]+)<\/h3>/g)].map((m) => m[1]);
        const wanted = isConfig ? ['Details', 'References'] : ['Inputs', 'Outputs', 'Details', 'References'];
        assert.deepEqual(sections.filter((s) => wanted.includes(s)), wanted, `${type} help sections: ${sections.join(', ')}`);
        if (!isConfig) assert.ok((help.match(/<dl class="message-properties">/g) ?? []).length >= 2, 'inputs and outputs list their message properties');
        assert.ok(!/data-help-name/.test(read(source(type, `${type}.html`))), 'help lives in locales/, not in the editor file');
      });

      it('has a message catalogue with every status key its code uses', () => {
        const catalogue = catalogueOf(type);
        assert.ok(lookUp(catalogue, type), `the catalogue's top-level key is ${type}`);
        const keys = statusKeys(type);
        if (!isConfig) assert.ok(keys.length > 0, `${type}.ts names no "${type}.status." keys`);
        const missing = keys.filter((k) => typeof lookUp(catalogue, k) !== 'string');
        assert.deepEqual(missing, [], `status keys missing from ${type}.json`);
      });

      it('sets every status from its catalogue, never from a literal text', () => {
        const code = read(source(type, `${type}.ts`));
        const literal = [...code.matchAll(/\btext:\s*['"`][^\n]*/g)].map((m) => m[0]);
        assert.deepEqual(literal, [], `${type}.ts sets a status text literally`);
      });

      it('finds every data-i18n and _() key of its editor file in a catalogue', () => {
        const html = read(source(type, `${type}.html`));
        const attributes = [...html.matchAll(/data-i18n="([^"]+)"/g)].flatMap((m) => m[1].split(';').map((k) => k.replace(/^\[[^\]]+\]/, '')));
        const calls = [...html.matchAll(/\b_\(\s*'([^']+)'/g)].map((m) => m[1]);
        const keys = [...new Set([...attributes, ...calls])];
        assert.ok(keys.length > 0, 'the edit form takes its labels from the catalogue');
        assert.deepEqual(keys.filter((k) => !resolves(type, k)), [], `keys of ${type}.html missing from its catalogue`);
      });

      it(isConfig ? 'is a config node' : 'sits in the shared palette category and colour, with its own icon', () => {
        const definition = editorDefinitions(source(type, `${type}.html`))[type];
        assert.ok(definition, `${type}.html registers ${type}`);
        if (isConfig) {
          assert.equal(definition.category, 'config');
          return;
        }
        assert.deepEqual({ category: definition.category, color: definition.color }, PALETTE);
        assert.ok(definition.icon && /\.svg$/.test(definition.icon), `${type} names an SVG icon, not ${definition.icon}`);
        const icon = join(ROOT, 'icons', definition.icon);
        assert.ok(existsSync(icon), `${icon} is missing`);
        assert.match(read(icon), /^<svg[^>]+xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]+viewBox="0 0 40 60"/);
      });

      it('accepts its defaults and marks bad values invalid', () => {
        const definition = editorDefinitions(source(type, `${type}.html`))[type];
        const defaults = definition.defaults ?? {};
        for (const [field, spec] of Object.entries(defaults)) {
          if (spec.type) continue; // a config node reference: the editor checks it exists
          if (spec.required && (spec.value === '' || spec.value === undefined)) continue; // must be filled in
          assert.ok(valid(definition, field, spec.value), `the default ${field} = ${JSON.stringify(spec.value)} is valid`);
        }
        for (const [field, values] of Object.entries(INVALID[type])) {
          assert.ok(defaults[field], `${type} has a ${field} setting`);
          for (const value of values) assert.equal(valid(definition, field, value), false, `${field} = ${JSON.stringify(value)} is refused`);
        }
      });

      it('declares the config nodes it uses as config-node references (so they list their users)', () => {
        const code = read(source(type, `${type}.ts`));
        const definition = editorDefinitions(source(type, `${type}.html`))[type];
        for (const m of code.matchAll(/RED\.nodes\.getNode\(config\.(\w+)\)/g)) {
          const field = m[1];
          assert.ok(definition.defaults?.[field]?.type, `${type}'s ${field} is a config-node reference (type: "<config type>")`);
        }
      });
    });
  }

  it('in a real Node-RED: help and catalogues reach the editor, and statuses are translated at runtime', async function () {
    this.timeout(120000);
    const scratch = scratchDir('editor-assets');
    const statusFile = join(scratch.dir, 'status.txt');
    const flow = [
      { id: 'tab', type: 'tab', label: 'status' },
      { id: 'in', z: 'tab', type: 'clara-dicom-in', aeTitle: 'CLARA', port: 0, host: '127.0.0.1', workRoot: join(scratch.dir, 'jobs'), wires: [[]] },
      { id: 'watch', z: 'tab', type: 'status', scope: ['in'], wires: [['text']] },
      { id: 'text', z: 'tab', type: 'change', rules: [{ t: 'set', p: 'payload', pt: 'msg', to: 'status.text', tot: 'msg' }], wires: [['toFile']] },
      { id: 'toFile', z: 'tab', type: 'file', filename: statusFile, filenameType: 'str', appendNewline: true, createDir: true, overwriteFile: 'false', encoding: 'utf8', wires: [] },
    ];
    let red: HeadlessRed | undefined;
    try {
      red = await startHeadlessRed(join(scratch.dir, 'user'), flow);
      const help = await (await fetch(`${red.url}/nodes`, { headers: { accept: 'text/html' } })).text();
      for (const type of nodeTypes) assert.match(help, new RegExp(`data-help-name="${type}"`), `the editor gets ${type}'s help`);
      const catalogue = (await (await fetch(`${red.url}/locales/node-red-contrib-clara-dicom/clara-dicom-in?lng=en-US`)).json()) as unknown;
      assert.equal(lookUp(catalogue, 'clara-dicom-in.status.starting'), 'starting');
      let lines: string[] = [];
      for (let i = 0; i < 200 && !lines.some((l) => l.startsWith('listening')); i++) {
        await delay(100);
        lines = existsSync(statusFile) ? read(statusFile).split('\n').filter(Boolean) : [];
      }
      assert.ok(lines.some((l) => /^listening :\d+ · 0 job\(s\), 0 instance\(s\)$/.test(l)), `statuses the status node saw: ${lines.join(' | ')}\n${red.log()}`);
      assert.ok(!lines.some((l) => /clara-dicom-in\.status\./.test(l)), `a status shows its key: ${lines.join(' | ')}`);
    } finally {
      await red?.stop();
      scratch.cleanup();
    }
  });
});
