// The live translation boxes of the website: <div class="attnlab-live" data-models="...">.
//
// Each box offers a text field. Nothing else is loaded until the reader asks for a
// translation: then translate.mjs, onnxruntime-web and the named models are fetched from
// this site (never from another host), and the translation is shown with its attention,
// drawn as the precomputed explorers draw it. Everything the reader typed is shown as
// text (textContent), never as markup.

const STATIC = new URL("../", import.meta.url); // the site's _static/
// What the kinds of attention are called and what their maps' rows and columns are,
// and each model's title, come with its manifest (attnlab.web.export writes them from the
// library's own list, attnlab.infer.inspection.ATTENTION_KINDS).

let engine = null;

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes)) {
    if (key === "style") node.style.cssText = value;
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children) node.append(child);
  return node;
}

// The theme's own colours where it has them, so that the box reads in light and dark mode.
const MUTED = "var(--pst-color-text-muted, #555)";
const TEXT = "var(--pst-color-text-base, #222)";

function cellStyle(weight) {
  const text = weight > 0.55 ? "#fff" : TEXT;
  return `background:rgba(33, 102, 172, ${weight.toFixed(3)});color:${text}`;
}

// A labelled attention map, as attnlab.view.explorer.matrix_html draws it.
function matrix(weights, rows, cols, currentRow = null) {
  const table = el("table", { class: "attnlab-live-map",
    style: "border-collapse:separate;border-spacing:1px;margin-top:8px;font-family:monospace;font-size:90%" });
  const head = el("tr", {}, el("th"));
  for (const label of cols) {
    head.append(el("th", { text: label, style: "padding:2px 4px;font-weight:normal;"
      + "writing-mode:vertical-rl;transform:rotate(180deg)" }));
  }
  table.append(head);
  weights.forEach((row, t) => {
    const current = t === currentRow;
    const tr = el("tr", { style: current ? "outline:3px solid #d9822b" : "" },
      el("th", { text: (current ? "▶ " : "") + rows[t],
                 style: `text-align:right;padding:0 6px;font-weight:${current ? "bold" : "normal"}` }));
    for (const w of row) {
      tr.append(el("td", { style: `${cellStyle(w)};width:22px;height:18px`, title: w.toFixed(2),
                           "data-weight": String(w) }));
    }
    table.append(tr);
  });
  return table;
}

function note(text) {
  return el("p", { text, style: `font-size:85%;color:${MUTED}` });
}

function bahdanauView(result, rows) {
  const source = [...result.source, "<eos>"];
  const box = el("div", { class: "attnlab-live-steps" });
  const slider = el("input", { type: "range", min: "0", max: String(rows.length - 1), value: "0",
                               "aria-label": "decoding step" });
  const view = el("div");
  const draw = () => {
    const step = Number(slider.value);
    const weights = result.weights.attention;
    const spans = source.map((token, j) => el("span", {
      style: `${cellStyle(weights[step][j])};padding:3px 6px;margin:1px;border-radius:3px;`
        + "display:inline-block;text-align:center" },
      token, el("br"), el("small", { text: weights[step][j].toFixed(2) })));
    view.replaceChildren(
      el("p", {}, `Step ${step + 1} of ${rows.length}: the decoder writes `,
         el("b", { text: rows[step], style: "font-size:120%" }), ", looking at:"),
      el("div", { style: "font-family:monospace" }, ...spans),
      matrix(weights, rows, source, step),
      note("Rows: output words; columns: source words; stronger blue = more weight."));
  };
  slider.addEventListener("input", draw);
  draw();
  box.append(el("label", {}, "Step: ", slider), view);
  return box;
}

function select(label, options) {
  const node = el("select", { "aria-label": label });
  options.forEach(([value, text]) => node.append(el("option", { value, text })));
  return node;
}

function transformerView(result, rows) {
  const source = [...result.source, "<eos>"];
  const inputs = ["<bos>", ...rows].slice(0, rows.length);
  const kinds = result.manifest.attention_kinds;
  const byName = new Map(kinds.map((k) => [k.name, k]));
  const labels = { source, written: rows, read: inputs };
  const first = result.weights[kinds[0].output];
  const layers = first.length;
  const heads = first[0].length;
  const kind = select("kind of attention", kinds.map((k) => [k.name, k.name]));
  const layer = select("layer", [...Array(layers).keys()].map((i) => [String(i), `layer ${i + 1}`]));
  const head = select("head", [["mean", "mean of the heads"],
    ...[...Array(heads).keys()].map((i) => [String(i), `head ${i + 1}`])]);
  const view = el("div");
  const draw = () => {
    const chosen = byName.get(kind.value);
    const stacked = result.weights[chosen.output][Number(layer.value)];
    const weights = head.value === "mean"
      ? stacked[0].map((row, i) => row.map((_, j) => stacked.reduce((s, h) => s + h[i][j], 0) / stacked.length))
      : stacked[Number(head.value)];
    const [r, c] = [labels[chosen.rows], labels[chosen.cols]];
    const which = head.value === "mean" ? "mean of the heads" : `head ${Number(head.value) + 1}`;
    view.replaceChildren(
      el("p", {}, el("b", { text: kind.value[0].toUpperCase() + kind.value.slice(1) }),
         `, layer ${Number(layer.value) + 1}, ${which}`),
      matrix(weights, r, c), note(`${chosen.axes} Stronger blue = more weight.`));
  };
  for (const control of [kind, layer, head]) control.addEventListener("change", draw);
  draw();
  return el("div", { class: "attnlab-live-layers" }, el("div", {}, kind, " ", layer, " ", head), view);
}

// The words of `words` not in `other` at the same place after their longest common
// run (a word-level diff): marked in the beam's translation where greedy differs.
function differs(words, other) {
  const n = words.length;
  const m = other.length;
  const common = Array.from({ length: n + 1 }, () => new Array(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i -= 1) {
    for (let j = m - 1; j >= 0; j -= 1) {
      common[i][j] = words[i] === other[j] ? common[i + 1][j + 1] + 1
        : Math.max(common[i + 1][j], common[i][j + 1]);
    }
  }
  const marked = [];
  let [i, j] = [0, 0];
  while (i < n) {
    if (j < m && words[i] === other[j]) { marked.push(false); i += 1; j += 1; }
    else if (j < m && common[i][j + 1] >= common[i + 1][j]) j += 1;
    else { marked.push(true); i += 1; }
  }
  return marked;
}

const ALPHAS = [0, 0.2, 0.4, 0.6, 0.8, 1, 1.5, 2];
const fixed = (x) => (x === -Infinity ? "−∞" : x.toFixed(2).replace("-", "−"));

// Beam search, live: width and length penalty as controls, every step's candidates
// ranked with their log-probabilities (raw and length-normalised), and on hover or focus
// the attention that chose each one's last word.
function beamView(result, search) {
  const width = select("beam width", [...Array(8).keys()].map((i) => [String(i + 1), `beam of ${i + 1}`]));
  width.value = "5";
  const alpha = select("length penalty α", ALPHAS.map((a) => [String(a), `α = ${a}`]));
  alpha.value = "0.6";
  const status = el("p", { role: "status", class: "attnlab-live-beam-status", style: "min-height:1.2em" });
  const view = el("div", { class: "attnlab-live-beam-view" });
  const source = [...result.source, "<eos>"];
  const looked = el("div", { class: "attnlab-live-beam-looked", style: "font-family:monospace;min-height:3.2em" });
  const showAttention = (h) => {
    if (!h.attention) {
      looked.replaceChildren(note("This model has no attention: nothing to show for a hypothesis."));
      return;
    }
    looked.replaceChildren(
      el("p", { style: "margin:4px 0" }, "Where the model looked when it chose ",
         el("b", { text: h.words[h.words.length - 1] }), ":"),
      ...source.map((token, j) => el("span", {
        style: `${cellStyle(h.attention[j])};padding:3px 6px;margin:1px;border-radius:3px;display:inline-block`,
        title: h.attention[j].toFixed(2) }, token)));
  };
  const draw = (beam) => {
    const greedy = result.tokens;
    const marks = differs(beam.tokens, greedy);
    const words = beam.tokens.length
      ? beam.tokens.map((w, i) => el(marks[i] ? "mark" : "span", { text: w }))
      : [el("span", { text: "(nothing: it chose <eos> first)" })];
    const same = beam.tokens.join(" ") === greedy.join(" ");
    const chosen = beam.best;
    const steps = el("ol", { class: "attnlab-live-beam-steps",
      style: "max-height:24em;overflow:auto;padding-left:2.5em;font-size:90%" });
    beam.steps.forEach((step, t) => {
      const items = el("ol", { style: "padding-left:1.5em" });
      for (const h of step) {
        const fate = h.ended ? "ended" : h.place !== null ? `goes on (place ${h.place + 1})` : "dropped: the search is done";
        const isBest = h === chosen;
        const item = el("li", { tabindex: "0", class: isBest ? "attnlab-live-beam-best" : "",
          style: isBest ? "outline:2px solid #d9822b;font-weight:bold" : "" },
          el("span", { style: "font-family:monospace", text: h.words.slice(0, -1).join(" ") + (h.words.length > 1 ? " " : "") }),
          el("b", { style: "font-family:monospace", text: h.words[h.words.length - 1] }),
          el("span", { style: `color:${MUTED}`,
            text: `${t > 0 ? ` · extends place ${h.parent + 1}` : ""} · log p ${fixed(h.logp)} · normalised ${fixed(h.score)} · ${fate}${isBest ? " · chosen" : ""}` }));
        for (const event of ["mouseenter", "focus"]) item.addEventListener(event, () => showAttention(h));
        items.append(item);
      }
      steps.append(el("li", {}, el("span", { text: `step ${t + 1}: ${step.length} candidates read, best first` }), items));
    });
    view.replaceChildren(
      el("p", {}, `Beam of ${beam.beamSize}, α = ${beam.alpha}: `, ...words.flatMap((w) => [w, " "])),
      note(same ? "The same translation as greedy decoding."
        : `Greedy decoding wrote: ${greedy.join(" ") || "(nothing)"}. Highlighted: the beam's words greedy does not have there.`),
      note(`Chosen: ${chosen.ended ? "the ended hypothesis with the best normalised score" : "no hypothesis ended, so the live one with the best log-probability"} (log p ${fixed(chosen.logp)}, normalised ${fixed(chosen.score)}).`),
      looked, steps);
  };
  let latest = 0; // only the last search asked for is drawn
  const run = async () => {
    const asked = ++latest;
    status.textContent = "Searching…";
    try {
      const beam = await search({ beamSize: Number(width.value), alpha: Number(alpha.value) });
      if (asked !== latest) return;
      draw(beam);
      status.textContent = "";
    } catch (error) {
      if (asked !== latest) return;
      view.replaceChildren();
      status.textContent = `Beam search failed: ${error.message}`;
    }
  };
  for (const control of [width, alpha]) control.addEventListener("change", run);
  // Searched when the reader opens it, not before.
  const details = el("details", { class: "attnlab-live-beam" },
    el("summary", { text: "Beam search, step by step" }),
    note("Try a wider beam or a larger α and watch which hypotheses survive each step; "
      + "hover over or tab to a candidate to see where the model looked when it chose its last word."),
    el("div", {}, width, " ", alpha), status, view);
  details.addEventListener("toggle", () => { if (details.open && latest === 0) run(); });
  return details;
}

// Switch heads off (the Transformer): a checkbox per head of each kind and layer; each
// change translates again without the unchecked heads and shows that translation, with
// its attention, under the one with every head on.
function headsView(result, retranslate) {
  const [, layers, count] = result.manifest.head_mask;
  const kinds = result.manifest.attention_kinds;
  const boxes = kinds.map(() => [...Array(layers)].map(() => []));
  const head = el("tr", {}, el("th", { text: "on?" }));
  for (let l = 0; l < layers; l += 1) {
    for (let h = 0; h < count; h += 1) {
      head.append(el("th", { text: `L${l + 1} h${h + 1}`, style: "font-weight:normal;padding:0 2px" }));
    }
  }
  const table = el("table", { class: "attnlab-live-heads", style: "border-collapse:collapse;font-size:85%" }, head);
  kinds.forEach((kind, k) => {
    const row = el("tr", {}, el("th", { text: kind.name, style: "text-align:right;font-weight:normal;padding-right:6px" }));
    for (let l = 0; l < layers; l += 1) {
      for (let h = 0; h < count; h += 1) {
        const box = el("input", { type: "checkbox", style: "width:24px;height:24px;margin:0",
                                  "aria-label": `${kind.name}, layer ${l + 1}, head ${h + 1}` });
        box.checked = true;
        boxes[k][l].push(box);
        row.append(el("td", { style: "text-align:center" }, box));
      }
    }
    table.append(row);
  });
  const status = el("p", { role: "status", class: "attnlab-live-heads-status", style: "min-height:1.2em" });
  const view = el("div", { class: "attnlab-live-heads-view" });
  let latest = 0; // only the last translation asked for is drawn
  const run = async () => {
    const asked = ++latest;
    const heads = boxes.map((byLayer) => byLayer.map((row) => row.map((box) => (box.checked ? 1 : 0))));
    const off = heads.flat(2).filter((x) => x === 0).length;
    if (off === 0) {
      view.replaceChildren(note("Every head is on: the translation is the one above."));
      status.textContent = "";
      return;
    }
    status.textContent = "Translating…";
    try {
      const masked = await retranslate({ heads });
      if (asked !== latest) return;
      const marks = differs(masked.tokens, result.tokens);
      const same = masked.tokens.join(" ") === result.tokens.join(" ");
      view.replaceChildren(
        el("p", {}, `Without ${off} head${off === 1 ? "" : "s"}: `,
           ...(masked.tokens.length ? masked.tokens : ["(nothing: it wrote <eos> first)"])
             .flatMap((w, i) => [el(marks[i] ? "mark" : "b", { text: w }), " "])),
        note(same ? "The same translation as with every head on."
          : `With every head on: ${result.tokens.join(" ")}. Highlighted: the words that changed.`),
        transformerView(masked, masked.rows));
      status.textContent = "";
    } catch (error) {
      if (asked !== latest) return;
      view.replaceChildren();
      status.textContent = `Could not translate: ${error.message}`;
    }
  };
  for (const box of boxes.flat(2)) box.addEventListener("change", run);
  return el("details", { class: "attnlab-live-heads-panel" },
    el("summary", { text: "Switch heads off" }),
    note("Uncheck a head and the model translates again without it (its output is set to zero before "
      + "the layer combines its heads). Try switching off every cross-attention head of a layer, "
      + "or one head at a time, and look for the words that change."),
    el("div", { style: "overflow-x:auto" }, table), status, view);
}

// The attention along a beam's chosen hypothesis: the row that chose each of its words
// (for the Transformer, its last layer's cross-attention averaged over the heads).
function pathView(beam) {
  if (!beam.path[0].attention) {
    return note("This model has no attention: its decoder sees the source only through one context vector.");
  }
  const words = beam.path.map((h) => h.words[h.words.length - 1]);
  const kind = beam.manifest.kind === "transformer" ? " (the last layer's cross-attention, mean of the heads)" : "";
  return el("div", { class: "attnlab-live-path" },
    matrix(beam.path.map((h) => h.attention), words, [...beam.source, "<eos>"]),
    note(`Rows: the chosen hypothesis's words; columns: source words${kind}; stronger blue = more weight.`));
}

// Force a prefix: the reader types the first words of the translation; the model reads
// them as its own (teacher forcing) and goes on greedily or with a beam. Shows the
// probability it gave each forced word, the translation, and its attention, forced rows
// first.
function prefixView(result, retranslate, search) {
  const input = el("input", { type: "text", size: "30", maxlength: "500",
                              style: "max-width:100%;box-sizing:border-box",
                              placeholder: "The first French words", "aria-label": "first words of the translation" });
  const how = select("continue with", [["greedy", "then greedy decoding"],
    ...[3, 5, 8].map((k) => [String(k), `then a beam of ${k} (α = 0.6)`])]);
  const button = el("button", { type: "submit", text: "Continue from these words" });
  const form = el("form", {}, input, " ", how, " ", button);
  const status = el("p", { role: "status", class: "attnlab-live-prefix-status", style: "min-height:1.2em" });
  const view = el("div", { class: "attnlab-live-prefix-view" });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    status.textContent = "Translating…";
    try {
      const greedy = how.value === "greedy";
      const forced = greedy ? await retranslate({ prefix: input.value })
        : await search({ prefix: input.value, beamSize: Number(how.value), alpha: 0.6 });
      const n = forced.forced.words.length;
      const rows = el("table", { class: "attnlab-live-prefix-probs", style: "font-size:90%" },
        el("tr", {}, el("th", { text: "forced word" }), el("th", { text: "the model's probability" })));
      forced.forced.words.forEach((w, i) => rows.append(el("tr", {},
        el("td", { text: w, style: "font-family:monospace" }),
        el("td", { text: `${(100 * forced.forced.probs[i]).toFixed(1)} %` }))));
      const attention = !greedy ? pathView(forced)
        : forced.manifest.kind === "bahdanau" ? bahdanauView(forced, forced.rows)
          : forced.manifest.kind === "transformer" ? transformerView(forced, forced.rows)
            : note("This model has no attention: its decoder sees the source only through one context vector.");
      view.replaceChildren(
        el("p", {}, greedy ? "Forced, then the model's own: " : `Forced, then a beam of ${forced.beamSize} from there: `,
           ...forced.tokens.flatMap((w, i) => [el(i < n ? "mark" : "b", { text: w }), " "])),
        note(`Without a forced prefix, greedy decoding wrote: ${result.tokens.join(" ") || "(nothing)"}.`),
        ...(forced.forced.unknown.length
          ? [note(`Read as <unk> (not in the model's French vocabulary): ${forced.forced.unknown.join(", ")}`)] : []),
        rows, attention);
      status.textContent = "";
    } catch (error) {
      view.replaceChildren();
      status.textContent = `Could not continue: ${error.message}`;
    } finally {
      button.disabled = false;
    }
  });
  return el("details", { class: "attnlab-live-prefix" },
    el("summary", { text: "Force the first words" }),
    note("Type the first words of a translation, yours or a wrong one, and the model goes on from them "
      + "as it does in training (teacher forcing), greedily or with a beam. Look at the probability it "
      + "gave each word you forced, and at how its attention moves once it has to follow words it "
      + "would not have chosen."),
    form, status, view);
}

function resultView(name, result, search, retranslate, explore) {
  const rows = result.rows;
  const bleu = result.manifest.test_bleu;
  const box = el("div", { class: "attnlab-live-result", "data-model": name },
    el("h4", { text: `${result.manifest.title || name}${bleu == null ? "" : ` · held-out BLEU ${bleu.toFixed(1)}`}` }),
    el("p", {}, el("span", { text: "Translation: " }),
       el("b", { class: "attnlab-live-text", text: result.text || "(nothing: the model wrote <eos> first)" })));
  if (result.manifest.profile === "smoke") {
    box.append(note("This build used the smoke profile: its models are tiny and barely trained, so "
      + "their translations are not meant to be good."));
  }
  if (result.unknown.length) {
    box.append(note(`Read as <unk> (not in the model's vocabulary): ${result.unknown.join(", ")}`));
  }
  if (result.truncated) {
    box.append(note(`The sentence was cut to its first ${result.manifest.max_src_len} words, as the library cuts it.`));
  }
  if (result.manifest.kind === "bahdanau") box.append(bahdanauView(result, rows));
  else if (result.manifest.kind === "transformer") box.append(transformerView(result, rows));
  else box.append(note("This model has no attention: its decoder sees the source only through one context vector."));
  if (explore.has("heads") && result.manifest.head_mask) box.append(headsView(result, retranslate));
  if (explore.has("prefix")) box.append(prefixView(result, retranslate, search));
  if (explore.has("beam")) box.append(beamView(result, search));
  return box;
}

function mount(container) {
  const names = (container.dataset.models || "").split(/\s+/).filter(Boolean);
  // What the box lets a reader explore beyond the greedy translation: "beam" search,
  // switching "heads" off, forcing a "prefix".
  const explore = new Set((container.dataset.explore || "").split(/\s+/).filter(Boolean));
  // At most the box's width: on a phone, 50 characters would push the page sideways.
  const input = el("input", { type: "text", size: "50", maxlength: "5000",
                              style: "max-width:100%;box-sizing:border-box",
                              placeholder: "Type an English sentence", "aria-label": "English sentence" });
  const button = el("button", { type: "submit", text: "Translate" });
  const status = el("p", { class: "attnlab-live-status", role: "status", style: "min-height:1.2em" });
  const results = el("div", { class: "attnlab-live-results" });
  const form = el("form", {}, input, " ", button);
  container.replaceChildren(
    el("p", {}, el("b", { text: "Your own sentence" }),
       " (translated in your browser; the models load the first time you ask)"),
    form, status, results);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    results.replaceChildren();
    status.textContent = "Loading and translating…";
    try {
      engine = engine || import(new URL("live/translate.mjs", STATIC).href);
      const { translate, beamSearch, NothingToTranslate } = await engine;
      const vendor = new URL("vendor/", STATIC);
      // Each model on its own: one that fails to load says so in its place, and the
      // others still translate.
      const failed = [];
      for (const name of names) {
        try {
          const url = new URL(`models/${name}/`, STATIC);
          const sentence = input.value;
          const result = await translate(url, vendor, sentence);
          const search = (options) => beamSearch(url, vendor, sentence, options);
          const retranslate = (options) => translate(url, vendor, sentence, options);
          results.append(resultView(name, result, search, retranslate, explore));
        } catch (error) {
          if (error instanceof NothingToTranslate) throw error; // the reader's, not a model's
          const title = error.title || name; // known once its manifest was read
          failed.push(`${title}: ${error.message}`);
          results.append(el("div", { class: "attnlab-live-result attnlab-live-error", "data-model": name },
            el("h4", { text: title }),
            note(`This model could not be used: ${error.message}`)));
        }
      }
      if (failed.length === names.length) throw new Error(failed.join("; "));
      status.textContent = failed.length ? `Not every model could be used. ${failed.join("; ")}` : "";
    } catch (error) {
      status.textContent = `Live translation failed: ${error.message}`;
      status.classList.add("attnlab-live-error");
    } finally {
      button.disabled = false;
    }
  });
}

for (const container of document.querySelectorAll(".attnlab-live")) mount(container);
