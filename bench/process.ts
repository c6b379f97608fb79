import { spawn } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface ProcessTiming {
  wallSeconds: number;
  peakRssMb: number;
  stdout: string;
}

/**
 * Runs a command under GNU time (`/usr/bin/time -v`) and returns its wall time and peak RSS, as the
 * benchmarking notes require: whole processes, measured the same way for us and for the peer.
 */
export function timeProcess(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<ProcessTiming> {
  const report = join(tmpdir(), `clara-bench-time-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn('/usr/bin/time', ['-v', '-o', report, command, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const wallSeconds = Number(process.hrtime.bigint() - started) / 1e9;
      let text = '';
      try {
        text = readFileSync(report, 'utf8');
      } catch {
        // time wrote nothing: the command could not start
      }
      rmSync(report, { force: true });
      if (code !== 0) return reject(new Error(`${command} ${args.join(' ')} exited ${code}: ${stderr.slice(-2000)}`));
      const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(text);
      resolve({ wallSeconds, peakRssMb: rss ? Number(rss[1]) / 1024 : NaN, stdout });
    });
  });
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Runs the contenders in turn (A B C A B C ...), so drift in the machine's speed hits all alike. */
export async function interleave<T extends string>(rounds: number, contenders: Record<T, () => Promise<ProcessTiming>>): Promise<Record<T, ProcessTiming[]>> {
  const results = {} as Record<T, ProcessTiming[]>;
  for (const name of Object.keys(contenders) as T[]) results[name] = [];
  for (let round = 0; round < rounds; round++) {
    for (const name of Object.keys(contenders) as T[]) results[name].push(await contenders[name]());
  }
  return results;
}
