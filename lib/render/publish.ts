/**
 * Clara's render publish folder (`<job>/publish/`, written by lib/infer/job): config.meta names the
 * density volume, the segmentation masks and the render settings file. Everything here reads file names
 * out of config.meta, so each goes through insideDir before it is opened.
 */
import { existsSync, readFileSync } from 'node:fs';
import { insideDir } from '../job';
import { readVolumeFileAsync } from '../volume/file';
import { type SnapshotOptions, type SnapshotResult, writeSnapshots } from './snapshot';

export const CONFIG_META = 'config.meta';

export interface PublishMeta {
  name: string;
  density: string;
  settings: string;
  seg_masks: string[];
}

/** Reads and checks `config.meta`; a missing or malformed one is an error naming what is wrong. */
export function readPublishMeta(publishDir: string): PublishMeta {
  const file = insideDir(publishDir, CONFIG_META);
  if (!existsSync(file)) throw new Error(`${file} does not exist (was the job segmented by clara-triton-infer?)`);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Partial<Record<keyof PublishMeta, unknown>>;
  if (typeof raw.density !== 'string' || raw.density === '') throw new Error(`${file}: no density volume`);
  const masks = Array.isArray(raw.seg_masks) ? raw.seg_masks.filter((m): m is string => typeof m === 'string' && m !== '') : [];
  return { name: typeof raw.name === 'string' ? raw.name : '', density: raw.density, settings: typeof raw.settings === 'string' ? raw.settings : '', seg_masks: masks };
}

/** Every file config.meta names (density, masks, settings) that exists, by name: what may be served or sent. */
export function publishedFiles(publishDir: string, meta: PublishMeta = readPublishMeta(publishDir)): string[] {
  const names = [CONFIG_META, meta.density, ...meta.seg_masks, meta.settings].filter((n) => n !== '');
  const out: string[] = [];
  for (const name of new Set(names)) {
    // A MetaImage header brings its data file along; both stay inside the folder.
    const path = insideDir(publishDir, name);
    if (!existsSync(path)) continue;
    out.push(name);
    if (name.endsWith('.mhd')) {
      const raw = name.replace(/\.mhd$/, '.raw');
      if (existsSync(insideDir(publishDir, raw))) out.push(raw);
    }
  }
  return out;
}

/** Snapshots of a publish folder's density volume with its first mask, into `outDir`. */
export async function renderPublished(publishDir: string, outDir: string, options: SnapshotOptions = {}): Promise<SnapshotResult & { meta: PublishMeta }> {
  const meta = readPublishMeta(publishDir);
  const maskName = meta.seg_masks[0];
  const [volume, mask] = await Promise.all([readVolumeFileAsync(insideDir(publishDir, meta.density)), maskName ? readVolumeFileAsync(insideDir(publishDir, maskName)) : undefined]);
  return { ...writeSnapshots(volume, mask, outDir, options), meta };
}
