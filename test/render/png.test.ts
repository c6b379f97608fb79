import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, encodePng } from '../../lib/render/png';
import { decodePng, pixel } from './helpers';

describe('render/png', () => {
  let dir: string;
  before(() => { dir = mkdtempSync(join(tmpdir(), 'clara-png-')); });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('computes the standard CRC-32 (check value of "123456789")', () => {
    assert.equal(crc32(Buffer.from('123456789', 'latin1')), 0xcbf43926);
    assert.equal(crc32(Buffer.from('IEND', 'latin1')), 0xae426082);
  });

  for (const channels of [3, 4] as const) {
    it(`writes an ${channels === 3 ? 'RGB' : 'RGBA'} image that Python's zlib reads back byte for byte`, () => {
      const [width, height] = [37, 21]; // odd sizes: no accidental alignment
      const data = new Uint8Array(width * height * channels);
      for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 5)) & 0xff;
      const file = join(dir, `t${channels}.png`);
      writeFileSync(file, encodePng({ width, height, channels, data }));
      const png = decodePng(file);
      assert.deepEqual([png.width, png.height, png.bitDepth, png.colorType], [width, height, 8, channels === 4 ? 6 : 2]);
      assert.deepEqual(png.chunks, ['IHDR', 'IDAT', 'IEND']);
      assert.ok(png.pixels.equals(Buffer.from(data)));
      assert.deepEqual(pixel(png, 1, 0), [...data.subarray(channels, 2 * channels)]);
    });
  }

  it('refuses a buffer that does not match the size', () => {
    assert.throws(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(11) }), /needs 12/);
    assert.throws(() => encodePng({ width: 0, height: 2, channels: 3, data: new Uint8Array(0) }), /positive/);
  });
});
