// The course's tokenizer in the browser: exactly attnlab.data.corpus.tokenize (Python).
//
// Python's steps, one by one: no-break and thin spaces become spaces and invisible
// characters vanish; the text is lower-cased and stripped of the characters Python
// calls whitespace; a space goes before each of , . ! ? that does not follow one;
// the tokens are what lies between single spaces. Characters are code points here, as
// in Python (a JavaScript string's indices are UTF-16 units, so it is split first).

const SPACES = new Map([["\u202f", " "], ["\u00a0", " "], ["\u2009", " "],
                        ["\u200b", ""], ["\u00ad", ""]]);
const PUNCT = new Set([",", ".", "!", "?"]);
// str.isspace() in Python: not the same set as JavaScript's trim() (which strips
// U+FEFF and keeps U+001C-U+001F and U+0085).
// eslint-disable-next-line no-control-regex -- U+001C-U+001F are Python whitespace
const PY_SPACE = /^[\t\n\v\f\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]$/u;

function pyStrip(chars) {
  let start = 0;
  let end = chars.length;
  while (start < end && PY_SPACE.test(chars[start])) start += 1;
  while (end > start && PY_SPACE.test(chars[end - 1])) end -= 1;
  return chars.slice(start, end);
}

export function normalize(text) {
  const mapped = Array.from(text, (c) => (SPACES.has(c) ? SPACES.get(c) : c)).join("");
  const chars = pyStrip(Array.from(mapped.toLowerCase()));
  const out = [];
  chars.forEach((c, i) => {
    if (PUNCT.has(c) && i > 0 && chars[i - 1] !== " ") out.push(" ");
    out.push(c);
  });
  return out.join("");
}

export function tokenize(text) {
  return normalize(text).split(" ").filter((token) => token.length > 0);
}

const JOINER = "@@";

// Subword pieces back into words ("tra@@ vail@@ lons" -> "travaillons"), as
// attnlab.data.corpus.join_pieces; words pass through unchanged.
export function joinPieces(tokens) {
  const words = [];
  let pending = "";
  for (const token of tokens) {
    if (token.endsWith(JOINER) && token.length > JOINER.length) {
      pending += token.slice(0, -JOINER.length);
    } else {
      words.push(pending + token);
      pending = "";
    }
  }
  if (pending) words.push(pending);
  return words;
}

export function detokenize(tokens) {
  return joinPieces(tokens).join(" ").replace(/ ([,.!?])/g, "$1");
}
