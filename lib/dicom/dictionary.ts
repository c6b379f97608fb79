import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatTag, parseTag } from './tags';

export interface DictionaryEntry {
  keyword: string;
  tag: number;
  vr: string;
  vm: string;
}

let byKeyword: Map<string, DictionaryEntry> | undefined;
let byTag: Map<number, DictionaryEntry> | undefined;

function load(): void {
  if (byKeyword) return;
  // Generated at build time (scripts/gen-dictionary.mjs) next to the compiled module.
  const raw = JSON.parse(readFileSync(join(__dirname, 'dictionary.json'), 'utf8')) as Record<string, [string, string, string]>;
  byKeyword = new Map();
  byTag = new Map();
  for (const [keyword, [hex, vr, vm]] of Object.entries(raw)) {
    const entry: DictionaryEntry = { keyword, tag: parseInt(hex, 16), vr, vm };
    byKeyword.set(keyword, entry);
    if (!byTag.has(entry.tag)) byTag.set(entry.tag, entry);
  }
}

export function entryForKeyword(keyword: string): DictionaryEntry | undefined {
  load();
  return byKeyword!.get(keyword);
}

export function entryForTag(tag: number): DictionaryEntry | undefined {
  load();
  const exact = byTag!.get(tag);
  if (exact) return exact;
  if ((tag & 0xffff) === 0) return { keyword: 'GroupLength', tag, vr: 'UL', vm: '1' };
  return undefined;
}

/** The tag named by a keyword, or by "(gggg,eeee)" for private and unnamed attributes. */
export function resolveTag(keywordOrTag: string): number | undefined {
  return parseTag(keywordOrTag) ?? entryForKeyword(keywordOrTag)?.tag;
}

/** The keyword of a tag, or its "(gggg,eeee)" form when the dictionary has no name for it. */
export function keywordOf(tag: number): string {
  return entryForTag(tag)?.keyword ?? formatTag(tag);
}
