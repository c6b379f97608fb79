// Writes the DICOM data dictionary (keyword, tag, VR, VM) as compact JSON, taken from dcmjs at build
// time so that the runtime never pays for loading dcmjs just to name an attribute.
import { createRequire } from 'node:module';
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const require = createRequire(import.meta.url);
const { nameMap } = require('dcmjs').data.DicomMetaDictionary;
const out = process.argv[2];
const entries = {};
for (const keyword of Object.keys(nameMap)) {
  const { tag, vr, vm } = nameMap[keyword];
  const m = /^\(([0-9A-Fa-f]{4}),([0-9A-Fa-f]{4})\)$/.exec(tag);
  if (!m || !/^[A-Za-z][A-Za-z0-9]*$/.test(keyword)) continue; // repeating groups (60xx) and oddities
  entries[keyword] = [(m[1] + m[2]).toUpperCase(), vr, vm];
}
mkdirSync(dirname(out), { recursive: true });
writeFileSync(out, JSON.stringify(entries));
console.log(`dictionary: ${Object.keys(entries).length} keywords`);
