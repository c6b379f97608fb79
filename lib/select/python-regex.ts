/**
 * Clara and MONAI Deploy selection rules are Python `re` patterns. This turns one into an equivalent
 * JavaScript RegExp, or says precisely why it cannot, so a rule file that works with Clara either
 * works here unchanged or is refused when the flow is deployed — never silently matched differently.
 */

export class PatternTranslationError extends Error {
  constructor(
    readonly pattern: string,
    readonly reason: string,
  ) {
    super(`cannot use the Python pattern ${JSON.stringify(pattern.length > 200 ? `${pattern.slice(0, 200)}…` : pattern)}: ${reason}`);
    this.name = 'PatternTranslationError';
  }
}

export interface TranslatedPattern {
  source: string;
  flags: string;
}

const FLAG_LETTERS: Record<string, string> = { i: 'i', s: 's', m: 'm', x: 'x', a: '', u: '' };

/** Strips whitespace and #-comments of a verbose (?x) pattern, keeping escapes and character classes. */
function stripVerbose(pattern: string): string {
  let out = '';
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      out += c + (pattern[i + 1] ?? '');
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
      out += c;
    } else if (c === '[') {
      inClass = true;
      out += c;
    } else if (c === '#') {
      while (i < pattern.length && pattern[i] !== '\n') i++;
    } else if (!/\s/.test(c)) {
      out += c;
    }
  }
  return out;
}

/**
 * Translates a Python `re` pattern: leading inline flags (?i) (?s) (?m) (?x) (and combinations),
 * (?P<name>…) and (?P=name), \A and \Z, (?#comments). Lookaheads and lookbehinds pass through.
 * Refused, with the reason: scoped or mid-pattern inline flags, conditionals, atomic groups and
 * possessive quantifiers, and anything JavaScript's RegExp rejects.
 */
export function translatePythonPattern(pattern: string): TranslatedPattern {
  let rest = pattern;
  const flags = new Set<string>();
  for (;;) {
    const m = /^\(\?([a-zA-Z]+)\)/.exec(rest);
    if (!m) break;
    for (const letter of m[1]) {
      if (!(letter in FLAG_LETTERS)) throw new PatternTranslationError(pattern, `inline flag "${letter}" has no JavaScript equivalent`);
      if (FLAG_LETTERS[letter]) flags.add(FLAG_LETTERS[letter]);
    }
    rest = rest.slice(m[0].length);
  }
  if (flags.has('x')) {
    flags.delete('x');
    rest = stripVerbose(rest);
  }
  let out = '';
  let inClass = false;
  for (let i = 0; i < rest.length; i++) {
    const c = rest[i];
    if (c === '\\') {
      const next = rest[i + 1];
      if (next === undefined) throw new PatternTranslationError(pattern, 'it ends with a lone backslash');
      if (!inClass && next === 'A') out += '(?<![\\s\\S])';
      else if (!inClass && next === 'Z') out += '(?![\\s\\S])';
      else out += c + next;
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      // A "]" right after "[" or "[^" is a literal in Python.
      if (rest[i + 1] === '^') out += rest[++i];
      if (rest[i + 1] === ']') out += '\\' + rest[++i];
      continue;
    }
    if (c === '(' && rest[i + 1] === '?') {
      const tail = rest.slice(i + 2);
      let m: RegExpExecArray | null;
      if ((m = /^P<([A-Za-z_][A-Za-z0-9_]*)>/.exec(tail))) {
        out += `(?<${m[1]}>`;
        i += 1 + m[0].length;
        continue;
      }
      if ((m = /^P=([A-Za-z_][A-Za-z0-9_]*)\)/.exec(tail))) {
        out += `\\k<${m[1]}>`;
        i += 1 + m[0].length;
        continue;
      }
      if (tail.startsWith('#')) {
        const close = rest.indexOf(')', i);
        if (close < 0) throw new PatternTranslationError(pattern, 'an unterminated (?# comment');
        i = close;
        continue;
      }
      if (tail.startsWith('(')) throw new PatternTranslationError(pattern, 'conditional groups (?(…)…) have no JavaScript equivalent');
      if (tail.startsWith('>')) throw new PatternTranslationError(pattern, 'atomic groups (?>…) have no JavaScript equivalent');
      if (/^[a-zA-Z-]+[:)]/.test(tail)) throw new PatternTranslationError(pattern, 'inline flags are only supported at the start of the pattern');
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && rest[i + 1] === '+') {
      throw new PatternTranslationError(pattern, 'possessive quantifiers (…+) have no JavaScript equivalent');
    }
    out += c;
  }
  if (inClass) throw new PatternTranslationError(pattern, 'an unterminated character class');
  const flagText = [...flags].sort().join('');
  try {
    new RegExp(out, flagText);
  } catch (err) {
    throw new PatternTranslationError(pattern, (err as Error).message.replace(/^Invalid regular expression: /, ''));
  }
  return { source: out, flags: flagText };
}

/**
 * Python's `re.search(pattern, value, re.IGNORECASE)`, as Clara and MONAI apply string conditions:
 * a match anywhere in the value, case-insensitive.
 */
export function compileSearch(pattern: string): RegExp {
  const { source, flags } = translatePythonPattern(pattern);
  let re: RegExp;
  try {
    re = new RegExp(source, flags.includes('i') ? flags : flags + 'i');
    // V8 compiles a pattern on its first use: a pattern too large for it fails here, not mid-study.
    re.test('');
  } catch (err) {
    // V8's message repeats the whole source before the reason; the pattern is in the message already.
    const reason = (err as Error).message.replace(/^Invalid regular expression: \/[\s\S]*\/[a-z]*: /, '');
    throw new PatternTranslationError(pattern, `JavaScript cannot compile it (${reason.slice(0, 120)})`);
  }
  re.lastIndex = 0;
  return re;
}
