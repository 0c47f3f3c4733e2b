// What the theme and the widgets leave out for keyboard and screen-reader users
// (book/_ext/accessibility.py; tests/test_accessibility.py runs axe-core on every page).
(function () {
  "use strict";

  function nameThemeParts() {
    // The search button's visible text ("Search Ctrl+K") names it; the theme's
    // aria-label ("Search") would hide the shortcut from speech-input users.
    document.querySelectorAll(".search-button-field[aria-label]").forEach((button) => {
      button.removeAttribute("aria-label");
    });
    // The sidebar's expand buttons (an empty <summary> with a chevron).
    document.querySelectorAll(".bd-sidenav li > details > summary").forEach((summary) => {
      const link = summary.closest("li").querySelector(":scope > a");
      if (!summary.textContent.trim() && link) {
        summary.setAttribute("aria-label", `Sections of ${link.textContent.trim()}`);
      }
    });
    // Icons drawn by the icon font are decoration: their button or link has the name.
    document.querySelectorAll('i[class*="fa-"]:not([aria-hidden])').forEach((icon) => {
      icon.setAttribute("aria-hidden", "true");
    });
    // The bibliography: docutils marks it as a list whose items are not list items.
    document.querySelectorAll('.citation-list[role="list"]').forEach((list) => {
      list.removeAttribute("role");
      list.querySelectorAll('[role="doc-biblioentry"]').forEach((entry) => {
        entry.removeAttribute("role");
      });
    });
  }

  function nameToggles(root) {
    // The toggles that show a hidden cell output (added by sphinx-togglebutton once the
    // page has loaded): their visible text ("Show code cell output") names them, not
    // "Toggle hidden content".
    root.querySelectorAll("details.hide > summary[aria-label]").forEach((summary) => {
      if (summary.textContent.trim()) {
        summary.removeAttribute("aria-label");
      }
    });
  }

  function nameWidgets(root) {
    // A slider's handle (role="slider") gets the slider's description as its name.
    root.querySelectorAll(".widget-slider, .widget-hslider").forEach((slider) => {
      const label = slider.querySelector(".widget-label");
      const text = label ? label.textContent.trim().replace(/:$/, "") : "";
      slider.querySelectorAll('[role="slider"]:not([aria-label])').forEach((handle) => {
        if (text) {
          handle.setAttribute("aria-label", text);
        }
      });
    });
  }

  // A figure shown by an image widget carries its text alternative inside the PNG, as
  // its "Description" (attnlab.view.widgets.figure_widget); it becomes the image's alt.
  async function pngDescription(url) {
    const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
    const view = new DataView(bytes.buffer);
    const latin1 = new TextDecoder("latin1");
    const utf8 = new TextDecoder("utf-8");
    for (let at = 8; at + 8 <= bytes.length;) {
      const length = view.getUint32(at);
      const type = latin1.decode(bytes.subarray(at + 4, at + 8));
      const data = bytes.subarray(at + 8, at + 8 + length);
      const key = data.indexOf(0);
      if ((type === "tEXt" || type === "iTXt") && key > 0 &&
          latin1.decode(data.subarray(0, key)) === "Description") {
        if (type === "tEXt") {
          return latin1.decode(data.subarray(key + 1));
        }
        // iTXt: keyword, 0, compressed?, method, language, 0, translated keyword, 0, text
        const language = data.indexOf(0, key + 3);
        const translated = data.indexOf(0, language + 1);
        let text = data.subarray(translated + 1);
        if (data[key + 1] === 1) {
          const stream = new Blob([text]).stream().pipeThrough(
            new DecompressionStream("deflate"));
          text = new Uint8Array(await new Response(stream).arrayBuffer());
        }
        return utf8.decode(text);
      }
      if (type === "IEND") {
        break;
      }
      at += 12 + length;
    }
    return null;
  }

  function describeWidgetImages(root) {
    root.querySelectorAll("img.widget-image:not([alt])").forEach((img) => {
      img.setAttribute("alt", "");            // once per image, while the PNG is read
      pngDescription(img.src)
        .then((text) => text && img.setAttribute("alt", text))
        .catch((error) => console.warn(`a11y: no description in ${img.src}: ${error}`));
    });
  }

  function focusScrollingBoxes() {
    // An output or a display equation wider than the page (on a phone, often) scrolls in
    // its own box: a keyboard must reach it. Equations are typeset when the book is
    // built; their width is known once KaTeX's fonts have loaded.
    document.querySelectorAll("article .cell_output .output > div, article div.math > .katex-display")
      .forEach((box) => {
        const style = getComputedStyle(box);
        const sideways = /(auto|scroll)/.test(style.overflowX) && box.scrollWidth > box.clientWidth;
        const down = /(auto|scroll)/.test(style.overflowY) && box.scrollHeight > box.clientHeight;
        if ((sideways || down) && !box.hasAttribute("tabindex")) {
          box.setAttribute("tabindex", "0");
        }
      });
  }

  function start() {
    nameThemeParts();
    nameToggles(document);
    nameWidgets(document);
    describeWidgetImages(document);
    focusScrollingBoxes();
    document.fonts.ready.then(focusScrollingBoxes);
    // Widgets render later (lazy-widgets.js), and re-render when a view changes; the
    // toggle buttons come after the page has loaded.
    let pending = false;
    new MutationObserver(() => {
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => {
          pending = false;
          nameToggles(document);
          nameWidgets(document);
          describeWidgetImages(document);
        });
      }
    }).observe(document.body, { childList: true, subtree: true });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
