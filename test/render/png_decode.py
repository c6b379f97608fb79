"""Independent PNG reader for the render tests: checks the signature and every chunk CRC with Python's
zlib.crc32, inflates IDAT with zlib, undoes filter 0 rows, and prints JSON {width, height, colorType,
bitDepth, chunks, pixels (base64 of the raw RGB/RGBA bytes)}. Only what lib/render/png.ts writes."""
import base64, json, struct, sys, zlib

data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'bad signature'
pos, idat, chunks, ihdr = 8, b'', [], None
while pos < len(data):
    (length,) = struct.unpack('>I', data[pos:pos + 4])
    ctype = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + length]
    (crc,) = struct.unpack('>I', data[pos + 8 + length:pos + 12 + length])
    assert zlib.crc32(ctype + body) & 0xffffffff == crc, 'bad CRC in ' + ctype.decode()
    chunks.append(ctype.decode())
    if ctype == b'IHDR':
        ihdr = struct.unpack('>IIBBBBB', body)
    elif ctype == b'IDAT':
        idat += body
    pos += 12 + length
width, height, depth, color, comp, filt, interlace = ihdr
channels = {2: 3, 6: 4}[color]
raw = zlib.decompress(idat)
stride = width * channels
assert len(raw) == (stride + 1) * height, 'bad IDAT size'
rows = []
for y in range(height):
    assert raw[y * (stride + 1)] == 0, 'filter type not 0'
    rows.append(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
print(json.dumps({'width': width, 'height': height, 'colorType': color, 'bitDepth': depth, 'chunks': chunks,
                  'pixels': base64.b64encode(b''.join(rows)).decode()}))
