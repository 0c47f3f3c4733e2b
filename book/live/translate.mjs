// Live translation in the reader's browser, with the course's exported models.
//
// The same steps as attnlab.web.export.onnx_translate (Python), which the tests hold to
// PyTorch: tokenize exactly as the library does, read unknown words as <unk>, cut the
// sentence to max_src_len tokens, then decode greedily, running the model's graph once
// per output word: on the words written so far (the GRU's and the Transformer's prefix
// graphs), or on the last word and the decoder's state (Bahdanau's step graph). Beam
// search, a forced prefix and heads switched off use the same step (nextStep). Nothing
// is fetched until a reader asks
// for a translation; every file is checked against its SHA-256 (the model's in its
// manifest, the runtime's in runtime.json, both written when the book was built) before
// it is used.
//
// The two large files, the model's graph and onnxruntime's WebAssembly, are served
// gzip-compressed (a static host sends .onnx and often .wasm files as they are) and
// decompressed here with the browser's DecompressionStream.

import { detokenize, tokenize } from "./tokenize.mjs";

const loaded = new Map(); // model URL -> Promise of {manifest, session, vocabs}
let runtime = null; // Promise of the onnxruntime-web module

export class LiveError extends Error {
  get name() { return "LiveError"; }
}

// The reader's sentence has no word in it: nothing is wrong with any model.
export class NothingToTranslate extends LiveError {}

// Bytes as served, decompressed if they are gzip (a server that sent them with
// Content-Encoding: gzip has already decompressed them).
async function gunzip(bytes, name) {
  const head = new Uint8Array(bytes, 0, Math.min(2, bytes.byteLength));
  if (head[0] !== 0x1f || head[1] !== 0x8b) return bytes;
  if (typeof DecompressionStream === "undefined") {
    throw new LiveError(`this browser cannot decompress ${name} (no DecompressionStream)`);
  }
  try {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return await new Response(stream).arrayBuffer();
  } catch (error) {
    throw new LiveError(`${name} is damaged: ${error.message}`);
  }
}

async function sha256Hex(bytes) {
  const digest = await crypto.subtle.digest("SHA-256", bytes);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

// The bytes at `url`, checked against `expected` (a SHA-256 in hex) unless it is null.
async function fetchChecked(url, expected, options = {}) {
  const name = url.pathname.split("/").pop();
  let response;
  try {
    response = await fetch(url, options);
  } catch (error) {
    throw new LiveError(`could not load ${name}: ${error.message}`);
  }
  if (!response.ok) throw new LiveError(`could not load ${name} (HTTP ${response.status})`);
  const bytes = await response.arrayBuffer();
  if (expected && (await sha256Hex(bytes)) !== expected) {
    throw new LiveError(`${name} does not match its SHA-256`);
  }
  return bytes;
}

// A gzip-compressed file, checked after decompressing: a server may have decompressed it.
async function fetchGunzipped(url, contentSha256, name) {
  const bytes = await gunzip(await fetchChecked(url, null), name);
  if ((await sha256Hex(bytes)) !== contentSha256) {
    throw new LiveError(`${name} does not match its SHA-256`);
  }
  return bytes;
}

// A file named by a list of hashes (the manifest, runtime.json) is fetched with its hash
// in its URL: a browser that kept an old copy of the list asks for the old files, which a
// new deploy no longer has, instead of pairing the old list with new files.
function hashed(url, sha256) {
  const out = new URL(url);
  out.searchParams.set("sha256", sha256);
  return out;
}

// A module whose bytes were checked, imported from those very bytes (a blob: URL), so
// that what runs is what was checked.
async function checkedModule(url, expected) {
  const bytes = await fetchChecked(hashed(url, expected), expected);
  const blob = URL.createObjectURL(new Blob([bytes], { type: "text/javascript" }));
  return { url: blob, load: () => import(blob) };
}

async function runtimeHashes() {
  const url = new URL("runtime.json", import.meta.url);
  const bytes = await fetchChecked(url, null, { cache: "no-cache" });
  let runtime;
  try {
    runtime = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    throw new LiveError(`runtime.json is not readable: ${error.message}`);
  }
  if (runtime?.format !== 2 || typeof runtime.files !== "object" || runtime.files === null
      || typeof runtime.roles !== "object" || runtime.roles === null) {
    throw new LiveError(`runtime.json has an unknown format (${runtime?.format})`);
  }
  // Each role's file (named by the build, book/_ext/live_models.py) and the hash it needs.
  const found = {};
  for (const [role, key] of [["loader", "sha256"], ["glue", "sha256"], ["wasm", "content_sha256"]]) {
    const name = runtime.roles[role];
    if (typeof name !== "string" || typeof runtime.files[name]?.[key] !== "string") {
      throw new LiveError(`runtime.json gives no SHA-256 for the runtime's ${role} (${name})`);
    }
    found[role] = { name, ...runtime.files[name] };
  }
  return found;
}

function ortModule(vendorUrl) {
  if (!runtime) {
    runtime = (async () => {
      const files = await runtimeHashes();
      const base = new URL("onnxruntime-web/", vendorUrl);
      const at = (role) => new URL(files[role].name, base);
      const [loader, glue, wasm] = await Promise.all([
        checkedModule(at("loader"), files.loader.sha256),
        checkedModule(at("glue"), files.glue.sha256),
        fetchGunzipped(hashed(at("wasm"), files.wasm.sha256), files.wasm.content_sha256,
                       "onnxruntime's WebAssembly")]);
      const ort = await loader.load();
      ort.env.wasm.numThreads = 1; // a static site is not cross-origin isolated
      ort.env.wasm.wasmPaths = { mjs: glue.url }; // the checked glue module
      ort.env.wasm.wasmBinary = wasm; // already here and checked: not fetched again
      return ort;
    })();
    runtime.catch(() => { runtime = null; }); // a failed load may be tried again
  }
  return runtime;
}

export function loadModel(modelUrl, vendorUrl) {
  const key = modelUrl.href;
  if (!loaded.has(key)) {
    const promise = (async () => {
      // Always asked of the server again (cache: "no-cache"): it names the files to load.
      const manifestBytes = await fetchChecked(new URL("manifest.json", modelUrl), null,
                                               { cache: "no-cache" });
      let manifest;
      try {
        manifest = JSON.parse(new TextDecoder().decode(manifestBytes));
      } catch (error) {
        throw new LiveError(`its manifest.json is not readable: ${error.message}`);
      }
      if (manifest?.format !== 4 || typeof manifest.files !== "object" || manifest.files === null) {
        throw new LiveError(`its manifest.json has an unknown format (${manifest?.format})`);
      }
      // The manifest names its files (attnlab.web.export writes them): the graph, then the
      // two vocabularies.
      const names = [manifest.graph, manifest.vocabularies?.src, manifest.vocabularies?.tgt];
      for (const name of names) {
        if (typeof name !== "string" || typeof manifest.files[name]?.sha256 !== "string") {
          throw new LiveError(`its manifest.json gives no SHA-256 for ${name}`);
        }
      }
      const [graph, srcName, tgtName] = names;
      const at = (name) => hashed(new URL(name, modelUrl), manifest.files[name].sha256);
      const file = (name) => fetchChecked(at(name), manifest.files[name].sha256);
      let model, src, tgt, session, ort;
      try {
        [model, src, tgt] = await Promise.all([
          fetchGunzipped(at(graph), manifest.files[graph].content_sha256, graph),
          file(srcName), file(tgtName)]);
        ort = await ortModule(vendorUrl);
        session = await ort.InferenceSession.create(new Uint8Array(model),
                                                    { executionProviders: ["wasm"] });
      } catch (error) {
        error.title = manifest.title; // the page names the model that failed
        throw error;
      }
      const decode = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
      return { ort, manifest, session, src: decode(src), tgt: decode(tgt) };
    })();
    promise.catch(() => loaded.delete(key)); // a failed load may be tried again
    loaded.set(key, promise);
  }
  return loaded.get(key);
}

// The index of the largest of data[offset .. offset + width - 1] (the first of equals).
function argmaxAt(data, offset, width) {
  let best = 0;
  let bestValue = -Infinity;
  for (let j = 0; j < width; j += 1) {
    const value = data[offset + j];
    if (value > bestValue) {
      bestValue = value;
      best = j;
    }
  }
  return best;
}

// The weights of the final prefix, one row per step taken (the <eos> step included),
// as nested arrays: attention [T][S]; encoder [L][h][S][S]; decoder_self [L][h][T][T];
// cross [L][h][T][S].
function nested(tensor, keep) {
  const dims = tensor.dims;
  const data = tensor.data;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((a, b) => a * b, 1));
  const build = (axis, offset) => {
    const size = Math.min(dims[axis], keep[axis] ?? dims[axis]);
    const out = [];
    for (let i = 0; i < size; i += 1) {
      const at = offset + i * strides[axis];
      out.push(axis === dims.length - 1 ? data[at] : build(axis + 1, at));
    }
    return out;
  };
  return build(0, 0);
}

// The reader's sentence as the model reads it: tokens cut to max_src_len, unknown words
// read as <unk>, <eos> last.
async function readSource(modelUrl, vendorUrl, sentence) {
  const all = tokenize(sentence);
  if (all.length === 0) {
    throw new NothingToTranslate("type a sentence first: there is nothing to translate");
  }
  const model = await loadModel(modelUrl, vendorUrl);
  const { manifest, src } = model;
  const tokens = all.slice(0, manifest.max_src_len);
  const index = new Map(src.map((token, i) => [token, i]));
  const ids = tokens.map((t) => (index.has(t) ? index.get(t) : manifest.special.unk))
    .concat([manifest.special.eos]);
  return { model, tokens, ids, unknown: tokens.filter((t) => !index.has(t)),
           truncated: all.length > manifest.max_src_len };
}

// onnxruntime's WebAssembly runs one graph at a time: every run waits for the one before
// (a beam search and a translation asked for at once take turns).
let running = Promise.resolve();
function oneAtATime(task) {
  const turn = running.then(task);
  running = turn.catch(() => {});
  return turn;
}

// The Transformer's head mask, (3, L, h) as the graph takes it (attnlab.infer.heads): 1
// for a head on, 0 for one switched off; `heads` nested as [kind][layer][head], or null
// for every head on. A model without heads takes none.
function headMask(ort, manifest, heads) {
  const shape = manifest.head_mask;
  if (!shape) {
    if (heads) throw new LiveError("this model has no attention heads to switch off");
    return null;
  }
  const [kinds, layers, count] = shape;
  const fits = heads === null || heads === undefined
    || (Array.isArray(heads) && heads.length === kinds && heads.every((layer) =>
      Array.isArray(layer) && layer.length === layers && layer.every((row) =>
        Array.isArray(row) && row.length === count && row.every((x) => x === 0 || x === 1))));
  if (!fits) {
    throw new LiveError(`the heads to keep must be ${kinds} kinds × ${layers} layers × ${count} heads of 0 or 1`);
  }
  const values = heads ? heads.flat(2) : new Array(kinds * layers * count).fill(1);
  if (!values.includes(1)) {
    throw new LiveError("every head is switched off: leave at least one on");
  }
  return new ort.Tensor("float32", Float32Array.from(values), shape);
}

// One run of the graph on a batch of prefixes of equal length (each starts with <bos>),
// the source repeated a row: the graph's outputs by name.
async function runPrefixes({ ort, session }, ids, prefixes, mask = null) {
  const rows = prefixes.length;
  const width = prefixes[0].length;
  const tgtIds = prefixes.flat();
  const int64 = (values, dims) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  const feeds = {
    src: int64(Array.from({ length: rows }, () => ids).flat(), [rows, ids.length]),
    src_len: int64(new Array(rows).fill(ids.length), [rows]),
    tgt_in: int64(tgtIds, [rows, width]),
    head_mask: mask,
  };
  // only the inputs the graph takes (the GRU's leaves out src_len, which it never reads)
  return oneAtATime(() => session.run(Object.fromEntries(session.inputNames.map((n) => [n, feeds[n]]))));
}

// One run of a step graph (Bahdanau's decoder, attnlab.web.export): each hypothesis's
// last word (<bos> at the first step) and state, the source repeated a row.
async function runStep({ ort, manifest, session }, ids, hypotheses, t) {
  const rows = hypotheses.length;
  const size = manifest.hidden_size;
  const hidden = new Float32Array(rows * size); // zeros at the first step: not read
  if (t > 0) hypotheses.forEach((h, i) => hidden.set(h.state, i * size));
  const int64 = (values, dims) => new ort.Tensor("int64", BigInt64Array.from(values, BigInt), dims);
  const feeds = {
    src: int64(Array.from({ length: rows }, () => ids).flat(), [rows, ids.length]),
    src_len: int64(new Array(rows).fill(ids.length), [rows]),
    prev: int64(hypotheses.map((h) => (t > 0 ? h.ids[h.ids.length - 1] : manifest.special.bos)), [rows]),
    hidden: new ort.Tensor("float32", hidden, [rows, size]),
    started: new ort.Tensor("float32", new Float32Array(rows).fill(t > 0 ? 1 : 0), [rows]),
  };
  return oneAtATime(() => session.run(feeds));
}

// One decoding step for a batch of hypotheses ({ids: the words so far, state}) at step
// t, whichever graph the model has: where each one's next-token logits are (`data` from
// `offsets[i]`, `vocab` of them), the attention over the source that chose them (the
// last layer's cross-attention averaged over its heads for the Transformer, as its
// decode_step reports it; null for a model without attention), each one's next state
// (a step graph's; null otherwise) and the graph's outputs.
async function nextStep(model, ids, hypotheses, t, mask) {
  const { manifest } = model;
  const rows = hypotheses.length;
  if (manifest.decoder === "step") {
    const outputs = await runStep(model, ids, hypotheses, t);
    const [, vocab] = outputs.logits.dims;
    const size = manifest.hidden_size;
    return {
      logits: { data: outputs.logits.data, vocab, offsets: [...Array(rows).keys()].map((i) => i * vocab) },
      attention: nested(outputs.attention, []),
      states: [...Array(rows).keys()].map((i) => outputs.next_hidden.data.slice(i * size, (i + 1) * size)),
      outputs,
    };
  }
  const { bos } = manifest.special;
  const outputs = await runPrefixes(model, ids, hypotheses.map((h) => [bos, ...h.ids]), mask);
  const [, width, vocab] = outputs.logits.dims;
  let attention = null;
  if (outputs.attention) {
    attention = nested(outputs.attention, []).map((rowsOf) => rowsOf[t]);
  } else if (outputs.cross) {
    const [, layers, heads] = outputs.cross.dims;
    attention = nested(outputs.cross, []).map((byLayer) => {
      const last = byLayer[layers - 1];
      return last[0][t].map((_, j) => last.reduce((sum, head) => sum + head[t][j], 0) / heads);
    });
  }
  return {
    logits: { data: outputs.logits.data, vocab, offsets: [...Array(rows).keys()].map((i) => (i * width + t) * vocab) },
    attention,
    states: null,
    outputs,
  };
}

// The first words of the translation the reader forces, as the model reads them (as
// attnlab.infer.forcing.force_prefix): tokenised as the corpus is, an unknown word read
// as <unk>; the reserved tokens and more than max_len - 1 words are refused.
function forcedWords(prefix, manifest, tgt) {
  if (typeof prefix !== "string") throw new LiveError("the forced prefix must be text");
  const words = tokenize(prefix);
  if (words.length === 0) {
    throw new LiveError("the forced prefix is empty: type the first words of the translation");
  }
  const reserved = words.filter((w) => ["<pad>", "<bos>", "<eos>"].includes(w));
  if (reserved.length) {
    throw new LiveError(`the forced prefix cannot hold ${reserved.join(", ")}: only words are forced`);
  }
  if (words.length >= manifest.max_len) {
    throw new LiveError(`the forced prefix has ${words.length} words; at most ${manifest.max_len - 1} can be forced`);
  }
  const index = new Map(tgt.map((token, i) => [token, i]));
  const unk = index.get("<unk>");
  return { ids: words.map((w) => (index.has(w) ? index.get(w) : unk)),
           unknown: words.filter((w) => !index.has(w)) };
}

// Log-softmax of the `vocab` logits from data[offset], in float64.
function logSoftmaxAt(data, offset, vocab) {
  let max = -Infinity;
  for (let j = 0; j < vocab; j += 1) max = Math.max(max, data[offset + j]);
  let sum = 0;
  for (let j = 0; j < vocab; j += 1) sum += Math.exp(data[offset + j] - max);
  const shift = max + Math.log(sum);
  const row = new Float64Array(vocab);
  for (let j = 0; j < vocab; j += 1) row[j] = data[offset + j] - shift;
  return row;
}

// Greedy decoding of the reader's sentence, with every head on or, for the Transformer,
// some switched off (`heads`, see headMask); with a `prefix`, the translation's first
// words are forced to it, and the probability the model gave each is returned.
export async function translate(modelUrl, vendorUrl, sentence, { heads = null, prefix: forcedText = null } = {}) {
  const { model, tokens, ids, unknown, truncated } = await readSource(modelUrl, vendorUrl, sentence);
  const { manifest, tgt } = model;
  const mask = headMask(model.ort, manifest, heads);
  const forced = forcedText === null ? null : forcedWords(forcedText, manifest, tgt);
  const forcedIds = forced ? forced.ids : [];
  const forcedProbs = [];
  const special = manifest.special;
  let hypothesis = { ids: [], state: null };
  const written = hypothesis.ids;
  const attentionRows = []; // a step graph's, step by step
  let outputs = null;
  let steps = 0;
  let ended = false;
  for (let t = 0; t < manifest.max_len; t += 1) {
    const next = await nextStep(model, ids, [hypothesis], t, mask);
    outputs = next.outputs;
    steps = t + 1;
    if (next.attention) attentionRows.push(next.attention[0]);
    const { data, vocab, offsets: [offset] } = next.logits;
    let token;
    if (t < forcedIds.length) {
      token = forcedIds[t];
      forcedProbs.push(Math.exp(logSoftmaxAt(data, offset, vocab)[token]));
    } else {
      token = argmaxAt(data, offset, vocab);
      if (token === special.eos) {
        ended = true;
        break;
      }
    }
    written.push(token);
    hypothesis = { ids: written, state: next.states && next.states[0] };
  }
  // As the library's translate: <pad> and <bos>, should a model write them, are not words.
  const words = written.filter((i) => i !== special.pad && i !== special.bos).map((i) => tgt[i]);
  // The batch's one sentence (axis 0), cut to the steps taken; a step graph's rows.
  const weights = manifest.decoder === "step" ? { attention: attentionRows } : {};
  for (const name of manifest.decoder === "step" ? [] : manifest.outputs.slice(1)) {
    const tensor = outputs[name];
    if (name === "attention") weights[name] = nested(tensor, [1, steps])[0];
    else if (name === "decoder_self") weights[name] = nested(tensor, [1, undefined, undefined, steps, steps])[0];
    else if (name === "cross") weights[name] = nested(tensor, [1, undefined, undefined, steps])[0];
    else weights[name] = nested(tensor, [1])[0];
  }
  // rows: what each decoding step wrote, <eos> included (the rows of the weights)
  const writtenTokens = written.map((i) => tgt[i]);
  const rows = ended ? [...writtenTokens, "<eos>"] : writtenTokens;
  return { source: tokens, unknown, truncated, tokens: words, rows, text: detokenize(words),
           weights, manifest, heads,
           forced: forced && { words: forcedIds.map((i) => tgt[i]), unknown: forced.unknown,
                               probs: forcedProbs } };
}

export const BEAM_SIZES = [1, 8]; // the widths a reader may ask for, smallest and largest

// Wu et al. (2016)'s length normalisation, as attnlab.infer.decoding.length_penalty.
export function lengthPenalty(length, alpha) {
  return ((5 + length) / 6) ** alpha;
}

// The n best (hypothesis, next token) pairs over every live hypothesis, best first; of
// equal scores the one met first (hypothesis by hypothesis, token by token) comes first.
function topCandidates(beam, logProbs, n) {
  const best = []; // sorted, best first, at most n
  beam.forEach((hypothesis, parent) => {
    const row = logProbs[parent];
    for (let token = 0; token < row.length; token += 1) {
      const logp = hypothesis.logp + row[token];
      if (best.length === n && !(logp > best[n - 1].logp)) continue;
      let at = best.length;
      while (at > 0 && logp > best[at - 1].logp) at -= 1;
      best.splice(at, 0, { parent, token, logp });
      if (best.length > n) best.pop();
    }
  });
  return best;
}

// Beam search on the reader's sentence, step by step: the algorithm of
// attnlab.infer.decoding.beam_search, for one sentence. At each step the 2k best
// candidates are read best first: one that ends with <eos> joins the ended hypotheses,
// any other goes on into the next beam; reading stops once k have gone on or k have
// ended (then the search is done). The translation is the ended hypothesis with the best
// length-normalised score (the first of equals), or if none ended, the live one with the
// best log-probability. Returns every step's candidates read, as
// attnlab.infer.beams.beam_translate does, and the chosen one's `path`: the hypothesis it
// grew from at each step, itself last. With a `prefix`, the first words are forced (as
// translate forces them): at those steps the forced word is the only candidate.
export async function beamSearch(modelUrl, vendorUrl, sentence, { beamSize = 5, alpha = 0.6, prefix: forcedText = null } = {}) {
  if (!Number.isInteger(beamSize) || beamSize < BEAM_SIZES[0] || beamSize > BEAM_SIZES[1]) {
    throw new LiveError(`the beam width must be a whole number from ${BEAM_SIZES[0]} to ${BEAM_SIZES[1]}, not ${beamSize}`);
  }
  if (typeof alpha !== "number" || !Number.isFinite(alpha) || alpha < 0) {
    throw new LiveError(`the length penalty α must be a number of at least 0, not ${alpha}`);
  }
  const { model, tokens, ids, unknown, truncated } = await readSource(modelUrl, vendorUrl, sentence);
  const { manifest, tgt } = model;
  const mask = headMask(model.ort, manifest, null);
  const forced = forcedText === null ? null : forcedWords(forcedText, manifest, tgt);
  const forcedIds = forced ? forced.ids : [];
  const forcedProbs = [];
  const { bos, eos } = manifest.special;
  const k = beamSize;
  let beam = [{ ids: [], logp: 0, state: null }];
  const ended = [];
  const steps = [];
  for (let t = 0; t < manifest.max_len && ended.length < k && beam.length > 0; t += 1) {
    const { logits, attention, states } = await nextStep(model, ids, beam, t, mask);
    let logProbs = logits.offsets.map((offset) => logSoftmaxAt(logits.data, offset, logits.vocab));
    if (t < forcedIds.length) { // only the forced word: every other is impossible
      const token = forcedIds[t];
      forcedProbs.push(Math.exp(logProbs[0][token]));
      logProbs = logProbs.map((row) => {
        const only = new Float64Array(row.length).fill(-Infinity);
        only[token] = row[token];
        return only;
      });
    }
    const step = [];
    const goesOn = [];
    let endsHere = 0;
    for (const candidate of topCandidates(beam, logProbs, 2 * k)) {
      if (candidate.logp === -Infinity || ended.length + endsHere >= k || goesOn.length >= k) break;
      const hypothesis = {
        ids: [...beam[candidate.parent].ids, candidate.token],
        logp: candidate.logp,
        score: candidate.logp / lengthPenalty(t + 1, alpha),
        parent: candidate.parent,
        ended: candidate.token === eos,
        place: null,
        attention: attention && attention[candidate.parent],
        state: states && states[candidate.parent], // what the next step reads
      };
      hypothesis.words = hypothesis.ids.map((i) => tgt[i]);
      if (hypothesis.ended) endsHere += 1;
      else goesOn.push(hypothesis);
      step.push(hypothesis);
    }
    ended.push(...step.filter((h) => h.ended));
    // a search with k ended hypotheses is done: none goes on
    beam = ended.length < k ? goesOn : [];
    beam.forEach((h, place) => { h.place = place; });
    steps.push(step);
  }
  const first = (list, key) => list.reduce((a, b) => (b[key] > a[key] ? b : a));
  const best = ended.length ? first(ended, "score") : first(steps[steps.length - 1].filter((h) => h.place !== null), "logp");
  // as the library's Vocab.decode: up to <eos>, without <pad> or <bos>
  const words = [];
  for (const i of best.ids) {
    if (i === eos) break;
    if (i !== manifest.special.pad && i !== bos) words.push(tgt[i]);
  }
  const path = [best];
  for (let t = best.ids.length - 2; t >= 0; t -= 1) {
    path.unshift(steps[t].find((h) => h.place === path[0].parent));
  }
  return { source: tokens, unknown, truncated, beamSize: k, alpha, steps, best, path,
           tokens: words, text: detokenize(words), manifest,
           forced: forced && { words: forcedIds.map((i) => tgt[i]), unknown: forced.unknown,
                               probs: forcedProbs } };
}
