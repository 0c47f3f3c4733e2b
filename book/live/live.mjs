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
            text: ` · log p ${fixed(h.logp)} · normalised ${fixed(h.score)} · ${fate}${isBest ? " · chosen" : ""}` }));
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

function resultView(name, result, search = null) {
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
  if (search) box.append(beamView(result, search));
  return box;
}

function mount(container) {
  const names = (container.dataset.models || "").split(/\s+/).filter(Boolean);
  // What the box lets a reader explore beyond the greedy translation ("beam").
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
          const search = explore.has("beam")
            ? (options) => beamSearch(url, vendor, sentence, options) : null;
          results.append(resultView(name, result, search));
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
