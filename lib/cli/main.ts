#!/usr/bin/env node
import { InputError, UsageError } from './args';

/** A sub-command: resolves to the process exit code. Loaded on demand so each command starts fast. */
type Command = { summary: string; usage: string; load: () => Promise<{ run(argv: string[]): Promise<number> }> };

const COMMANDS: Record<string, Command> = {};

export function registerCommand(name: string, command: Command): void {
  COMMANDS[name] = command;
}

function usage(): string {
  const lines = ['usage: clara-dicom <command> [options]', '', 'commands:'];
  for (const c of Object.values(COMMANDS)) lines.push(`  ${c.usage.padEnd(72)} ${c.summary}`);
  return lines.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage() + '\n');
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`clara-dicom: unknown command "${name}"\n${usage()}\n`);
    return 2;
  }
  try {
    const mod = await command.load();
    return await mod.run(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`clara-dicom ${name}: ${err.message}\nusage: clara-dicom ${command.usage}\n`);
      return 2;
    }
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`clara-dicom ${name}: ${message.split('\n')[0]}\n`);
    if (!(err instanceof InputError) && process.env.CLARA_DICOM_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    return 1;
  }
}

// Command registry: one line per command, each implemented in its own module under lib/cli/.
registerCommand('parse', {
  usage: 'parse <dicom-dir> <out-dir> [--format nifti|nifti-gz|mhd] [--spacing warn|reject]',
  summary: 'convert every image series of a folder into volumes plus Clara metadata',
  load: () => import('./parse'),
});
registerCommand('select', {
  usage: 'select [--rules <file|json|base64>] [--out DIR] [--all-matched] [--json] <parsed-dir>',
  summary: 'apply Clara/MONAI series selection rules to a parse; exit 3 when a selection matches nothing',
  load: () => import('./select'),
});
registerCommand('infer', {
  usage: 'infer <volume> <out> [--model-repo DIR | --server grpc://host:8001] [--preset P | --model NAME] [--roi 64,64,64]',
  summary: 'segment one volume: the bundled demo model by default, or any model embedded or on a Triton / KServe v2 server',
  load: () => import('./infer'),
});
registerCommand('seg', {
  usage: 'seg <mask> <source-series-dir> <out-dir> [--labels JSON] [--codes JSON] [--fractional] [--uid-root R] [--series-description T]',
  summary: 'write a DICOM Segmentation (SEG) of a label volume on its source series',
  load: () => import('./seg'),
});
registerCommand('rtstruct', {
  usage: 'rtstruct <mask> <source-series-dir> <out-dir> [--labels JSON] [--styles JSON] [--uid-root R] [--tolerance PX]',
  summary: 'write a DICOM RT Structure Set (RTSTRUCT) of a label volume on its source series',
  load: () => import('./rtstruct'),
});
registerCommand('send', {
  usage: 'send <files|dir>... --to AE@host:port [--calling-ae AE] [--retries N] [--timeout S] [--json]',
  summary: 'C-STORE files to a DICOM peer through the durable outbox clara-scu-out uses; exit 1 if any instance was not stored',
  load: () => import('./send'),
});
registerCommand('import', {
  usage: 'import <pipeline.yaml> -o flow.json [--set NAME=AE@host:port] [--dicom-port N] [--dicom-host H] [--triton embedded|grpc://host:8001]',
  summary: 'turn a Clara pipeline (api-version 0.3/0.4) into a prewired Node-RED flow',
  load: async () => ({ run: (await import('../../flows/cli')).runImport }),
});
registerCommand('export', {
  usage: 'export <flow.json> -o pipeline.yaml [--tab ID]',
  summary: 'write a flow imported from Clara YAML back as a Clara pipeline',
  load: async () => ({ run: (await import('../../flows/cli')).runExport }),
});
registerCommand('deploy', {
  usage: 'deploy <pipeline.yaml|flow.json> --target http://host:1880 [--user U --password P | --token T]',
  summary: 'put the flow onto a running (edge) Node-RED through its Admin API, replacing its earlier copy',
  load: async () => ({ run: (await import('../../flows/cli')).runDeploy }),
});
registerCommand('run', {
  usage: 'run <pipeline.yaml|flow.json> --input <dicom-dir> --out <dir> [--via ingest|c-store|storescu] [--serve] [--json]',
  summary: 'run a flow as a batch job in a Node-RED runtime started for it; exit 1 unless every job finished and was delivered',
  load: async () => ({ run: (await import('../../flows/cli')).runRun }),
});
registerCommand('phantom', {
  usage: 'phantom <out-dir> [--size N] [--slices N] [--seed N]',
  summary: 'write a synthetic brain MR study and its ground-truth tumour mask',
  load: () => import('./phantom'),
});
registerCommand('listen', {
  usage: 'listen <work-root> [--port N] [--ae AET] [--timeout S] [--allow AE[@host],...]',
  summary: 'run the C-STORE SCP on its own; one JSON line per completed study job',
  load: () => import('./listen'),
});
registerCommand('demo', {
  usage: 'demo [--work-dir DIR] [--pipeline clara.yaml] [--size N] [--slices N] [--serve]',
  summary: "run Clara's Advanced DICOM Integration pipeline end to end on the bundled phantom study, with the embedded model",
  load: () => import('../../flows/demo'),
});

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`clara-dicom: ${(err as Error).message}\n`);
      process.exit(1);
    },
  );
}
