import assert from 'node:assert/strict';
import { Dataset, requests as dimseRequests, responses as dimseResponses } from 'dcmjs-dimse';
import { TransferSyntax } from '../../lib/dicom/uids';
import { encodeFileMeta } from '../../lib/dicom/writer';
import {
  PolicyConfigError, chooseTransferSyntax, decideAssociation, isStorageAbstractSyntax, parseAllowList,
} from '../../lib/dimse';
import { decodeCommandSet, encodeCommandSet } from '../../lib/dimse/command';
import { part10Header } from '../../lib/dimse/meta';

describe('lib/dimse policy', () => {
  it('parses allow-lists written one peer per line, AE or AE@host, ignoring blanks and comments', () => {
    assert.deepEqual(parseAllowList(''), []);
    assert.deepEqual(parseAllowList('  \n# just a comment\n'), []);
    assert.deepEqual(parseAllowList('PACS\nCT_SCANNER@10.0.0.7\r\n MR1 @ mr1.hospital.lan ,WS'), [
      { aeTitle: 'PACS' },
      { aeTitle: 'CT_SCANNER', host: '10.0.0.7' },
      { aeTitle: 'MR1', host: 'mr1.hospital.lan' },
      { aeTitle: 'WS' },
    ]);
    assert.throws(() => parseAllowList('WAY_TOO_LONG_AE_TITLE'), PolicyConfigError);
    assert.throws(() => parseAllowList('BAD\\AE'), PolicyConfigError);
    assert.throws(() => parseAllowList('PACS@'), PolicyConfigError);
    assert.throws(() => parseAllowList('PACS@host name'), PolicyConfigError);
  });

  it('decides associations: called AE first, then the allow-list (empty accepts all), then the host', () => {
    const peer = { callingAE: 'PACS', calledAE: 'CLARA', remoteAddress: '::ffff:10.0.0.7' };
    const policy = { aeTitle: 'CLARA', acceptAnyCalledAE: false, allow: [] };
    assert.deepEqual(decideAssociation(peer, policy), { accept: true });
    const wrongCalled = decideAssociation({ ...peer, calledAE: 'OTHER' }, policy);
    assert.equal(wrongCalled.accept ? '' : wrongCalled.reason, 'called-ae-not-recognized');
    assert.deepEqual(decideAssociation({ ...peer, calledAE: 'OTHER' }, { ...policy, acceptAnyCalledAE: true }), { accept: true });
    const listed = { ...policy, allow: [{ aeTitle: 'PACS', addresses: new Set(['10.0.0.7']) }] };
    assert.deepEqual(decideAssociation(peer, listed), { accept: true });
    const elsewhere = decideAssociation({ ...peer, remoteAddress: '10.0.0.8' }, listed);
    assert.equal(elsewhere.accept ? '' : elsewhere.reason, 'calling-ae-not-recognized');
    const unknown = decideAssociation({ ...peer, callingAE: 'pacs' }, listed);
    assert.equal(unknown.accept, false, 'AE titles are case-sensitive');
  });

  it('accepts storage and verification abstract syntaxes, not query/retrieve, worklist or print', () => {
    for (const uid of ['1.2.840.10008.5.1.4.1.1.4', '1.2.840.10008.5.1.4.1.1.66.4', '1.2.840.10008.5.1.4.1.1.88.22', '1.3.12.2.1107.5.9.1']) {
      assert.ok(isStorageAbstractSyntax(uid), uid);
    }
    for (const uid of ['1.2.840.10008.1.1', '1.2.840.10008.5.1.4.1.2.2.1', '1.2.840.10008.5.1.4.31', '1.2.840.10008.5.1.1.9', '1.2.840.10008.1.20.1', '1.2.840.10008.3.1.2.3.3']) {
      assert.ok(!isStorageAbstractSyntax(uid), uid);
    }
  });

  it('chooses the peer\'s first acceptable transfer syntax, but explicit over implicit little endian', () => {
    const mr = '1.2.840.10008.5.1.4.1.1.4';
    assert.equal(chooseTransferSyntax(mr, [TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian]), TransferSyntax.ExplicitVRLittleEndian);
    assert.equal(chooseTransferSyntax(mr, [TransferSyntax.ImplicitVRLittleEndian]), TransferSyntax.ImplicitVRLittleEndian);
    assert.equal(chooseTransferSyntax(mr, [TransferSyntax.Jpeg2000Lossless, TransferSyntax.ExplicitVRLittleEndian]), TransferSyntax.Jpeg2000Lossless);
    assert.equal(chooseTransferSyntax(mr, ['1.2.840.10008.1.2.4.100', TransferSyntax.HtJpeg2000]), TransferSyntax.HtJpeg2000, 'MPEG2 is not offered for storage');
    assert.equal(chooseTransferSyntax(mr, ['1.2.840.10008.1.2.4.100']), undefined);
    assert.equal(chooseTransferSyntax('1.2.840.10008.1.1', [TransferSyntax.Jpeg2000, TransferSyntax.ImplicitVRLittleEndian]), TransferSyntax.ImplicitVRLittleEndian);
    for (const ts of Object.values(TransferSyntax)) assert.equal(chooseTransferSyntax(mr, [ts]), ts);
  });
});

describe('lib/dimse fast command codec and file meta header', () => {
  /** dcmjs's own reading of a command set, as dcmjs-dimse did it before the fast path (Dataset._fromElementsBuffer). */
  function dcmjsRead(buffer: Buffer): Record<string, unknown> {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { data } = require('dcmjs') as {
      data: {
        ReadBufferStream: new (b: ArrayBuffer) => unknown;
        DicomMessage: { _read(stream: unknown, ts: string, options: unknown): unknown };
        DicomMetaDictionary: { naturalizeDataset(ds: unknown): Record<string, unknown> };
      };
    };
    const stream = new data.ReadBufferStream(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.byteLength) as ArrayBuffer);
    return data.DicomMetaDictionary.naturalizeDataset(data.DicomMessage._read(stream, TransferSyntax.ImplicitVRLittleEndian, { ignoreErrors: true }));
  }

  function commandsToCheck(): Array<{ name: string; elements: Record<string, unknown> }> {
    const store = new dimseRequests.CStoreRequest(new Dataset({ SOPClassUID: '1.2.840.10008.5.1.4.1.1.4', SOPInstanceUID: '1.2.3.4.5' }, TransferSyntax.ExplicitVRLittleEndian));
    store.setMessageId(513);
    const rsp = dimseResponses.CStoreResponse.fromRequest(store);
    rsp.setStatus(0xa900);
    (rsp as unknown as { setErrorComment(c: string): void }).setErrorComment('invalid SOP Instance UID, odd');
    const echo = new dimseRequests.CEchoRequest();
    echo.setMessageId(2);
    const echoRsp = dimseResponses.CEchoResponse.fromRequest(echo);
    echoRsp.setStatus(0);
    // What a C-MOVE sub-operation's C-STORE carries, with an AE title that needs padding.
    const subOperation = {
      CommandField: 1, MessageID: 9, Priority: 2, CommandDataSetType: 0x0202, AffectedSOPClassUID: '1.2.840.10008.5.1.4.1.1.4',
      AffectedSOPInstanceUID: '1.2.3.45', MoveOriginatorApplicationEntityTitle: 'MOVE SCU', MoveOriginatorMessageID: 4,
    };
    return [
      ...[store, rsp, echo, echoRsp].map((c) => ({ name: c.toString(), elements: c.getCommandDataset().getElements() })),
      { name: 'C-STORE RQ of a C-MOVE', elements: subOperation },
      { name: 'odd-length AE', elements: { ...subOperation, MoveOriginatorApplicationEntityTitle: 'ODD' } },
    ];
  }

  it('encodes command sets that dcmjs reads back to the same elements', () => {
    for (const { name, elements } of commandsToCheck()) {
      const encoded = encodeCommandSet(elements);
      assert.ok(encoded, name);
      const decoded = dcmjsRead(encoded);
      for (const [key, value] of Object.entries(elements)) {
        if (key.startsWith('_') || value === undefined) continue;
        assert.deepEqual(decoded[key], value, `${name}: ${key}`);
      }
      assert.equal(decoded.CommandGroupLength, encoded.length - 12);
    }
  });

  it('decodes command sets exactly as dcmjs does, and declines what it does not handle', () => {
    for (const { name, elements } of commandsToCheck()) {
      const encoded = encodeCommandSet(elements)!;
      assert.deepEqual(decodeCommandSet(encoded), dcmjsRead(encoded), name);
    }
    // Multi-valued, empty or unknown elements go to dcmjs.
    const withEmpty = Buffer.concat([encodeCommandSet({ CommandField: 1 })!, Buffer.from([0x00, 0x00, 0x02, 0x09, 0, 0, 0, 0])]);
    assert.equal(decodeCommandSet(withEmpty), undefined);
    assert.equal(decodeCommandSet(Buffer.from([0x08, 0x00, 0x18, 0x00, 2, 0, 0, 0, 0x31, 0x00])), undefined);
  });

  it('writes the same Part 10 header bytes as lib/dicom encodeFileMeta', () => {
    const identities = [
      { sopClassUID: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUID: '1.2.3.4', transferSyntaxUID: TransferSyntax.ExplicitVRLittleEndian, sourceAETitle: 'STORESCU' },
      { sopClassUID: '1.2.840.10008.5.1.4.1.1.2', sopInstanceUID: '1.2.33', transferSyntaxUID: TransferSyntax.Jpeg2000Lossless, sourceAETitle: 'ODD' },
      { sopClassUID: '1.2.840.10008.5.1.4.1.1.4', sopInstanceUID: '../../evil', transferSyntaxUID: TransferSyntax.ImplicitVRLittleEndian },
      { sopClassUID: '', sopInstanceUID: '' },
    ];
    for (const identity of identities) assert.ok(part10Header(identity).equals(encodeFileMeta(identity)), JSON.stringify(identity));
  });
});
