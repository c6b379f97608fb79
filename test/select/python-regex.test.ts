import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { PatternTranslationError, compileSearch, translatePythonPattern } from '../../lib/select/python-regex';

// Debian's python3 (pyenv's may shadow it on PATH); only the standard library's re is used.
const PYTHON = '/usr/bin/python3';

const PATTERNS = [
  '^(?=.*T1c)(?!.*(ref|rfmt|[0-9]x[0-9])).*',
  '(?i)^MR',
  '(?i)Brain',
  '(?ims)^ax.*mprage$',
  '(?x) ^ ax \\s+ 3d   # the acquisition\n  \\s t1c',
  '(?P<plane>Ax|Cor|Sag) (?P=plane)',
  '\\AAx T1',
  'SE\\Z',
  't1c(?#post contrast)',
  '[]x]',
  '[^]a]+$',
  '(?<=Ax )T2',
  '(?<!Sag )T1c',
  '^$',
  'T1\\.c',
  '\\d{2,}',
];
const VALUES = [
  'Ax 3D T1c MPRAGE', 'Ax T1c 2x2 ref', 'Cor T1c rfmt', 'Sag T1c MPR', 'Ax T1 SE', 'Ax T2 FLAIR', 'MRI Brain w/wo', 'mr',
  'ax 3d t1c', 'Ax Ax', 'Cor Ax', ']', 'abc', 'x]', '', 'T1.c', 'T1xc', 'series 12', 'line1\nAx T1 SE\nline3', 'ax\nmprage',
];

function pythonMatches(): boolean[][] {
  const script = `import json,re,sys\nd=json.load(sys.stdin)\nprint(json.dumps([[re.search(p,v,re.I) is not None for v in d['v']] for p in d['p']]))`;
  const run = spawnSync(PYTHON, ['-c', script], { input: JSON.stringify({ p: PATTERNS, v: VALUES }), encoding: 'utf8' });
  assert.equal(run.status, 0, run.stderr);
  return JSON.parse(run.stdout) as boolean[][];
}

describe('lib/select python-regex: Python re patterns in JavaScript', () => {
  it('matches exactly what Python re.search(pattern, value, re.IGNORECASE) matches', () => {
    const expected = pythonMatches();
    PATTERNS.forEach((pattern, p) => {
      const re = compileSearch(pattern);
      VALUES.forEach((value, v) => {
        assert.equal(re.test(value), expected[p][v], `${JSON.stringify(pattern)} on ${JSON.stringify(value)}`);
      });
    });
  });

  it('translates the constructs Clara rule files use', () => {
    assert.deepEqual(translatePythonPattern('(?i)^MR'), { source: '^MR', flags: 'i' });
    assert.deepEqual(translatePythonPattern('(?P<x>a)(?P=x)'), { source: '(?<x>a)\\k<x>', flags: '' });
    assert.equal(translatePythonPattern('\\Aa\\Z').source, '(?<![\\s\\S])a(?![\\s\\S])');
    assert.equal(translatePythonPattern('[\\A]').source, '[\\A]', '\\A inside a class is left alone');
  });

  for (const [pattern, reason] of [
    ['(?(1)a|b)', /conditional/],
    ['(?>ab)c', /atomic/],
    ['a*+', /possessive/],
    ['a(?i)b', /only supported at the start/],
    ['(?i:a)b', /only supported at the start/],
    ['(?L)a', /inline flag "L"/],
    ['a(b', /Unterminated group|unterminated/i],
    ['[ab', /unterminated character class/],
  ] as const) {
    it(`refuses ${JSON.stringify(pattern)} with the reason`, () => {
      assert.throws(() => translatePythonPattern(pattern), (err: Error) => err instanceof PatternTranslationError && reason.test(err.message) && err.message.includes(JSON.stringify(pattern)));
    });
  }

  it('refuses, at compile time, a pattern JavaScript cannot compile (too large), with the pattern shortened in the message', () => {
    const huge = 'x'.repeat(100000);
    assert.throws(() => compileSearch(huge), (err: Error) => err instanceof PatternTranslationError && /JavaScript cannot compile it/.test(err.message) && err.message.length < 400);
    assert.ok(compileSearch('^T1').test('t1 mprage'), 'an ordinary pattern still compiles and matches');
  });
});
