/**
 * Preloaded (`node --require`) into a Node-RED child process by tests that watch its memory. On SIGWINCH (ignored by default, and not one of the signals red.js ends on) it runs
 * two full garbage collections and writes the process's memory figures as JSON to CLARA_HEAP_PROBE_FILE, so that a
 * test can tell live heap that keeps growing (a leak) from resident pages the allocator has not handed back.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface HeapProbeReading {
  /** Counts the readings, so a test can wait for the one its signal asked for. */
  sequence: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
  rss: number;
}

const target = process.env.CLARA_HEAP_PROBE_FILE;
if (target) {
  setFlagsFromString('--expose-gc');
  const collect = runInNewContext('gc') as () => void;
  let sequence = 0;
  process.on('SIGWINCH', () => {
    collect();
    collect();
    const m = process.memoryUsage();
    const reading: HeapProbeReading = { sequence: ++sequence, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, rss: m.rss };
    writeFileSync(`${target}.tmp`, JSON.stringify(reading));
    renameSync(`${target}.tmp`, target);
  });
}
