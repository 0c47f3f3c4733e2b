"""Keep every page light: icons without the theme's script, widgets only when needed,
scripts out of the way.

What a reader's browser would otherwise download on every page, before the
reader does anything:

* **Icons.** pydata-sphinx-theme loads Font Awesome's SVG script (543 kB gzipped) to
  draw a few dozen icons that its CSS can already draw with the Font Awesome
  webfonts (274 kB more, for the solid and brand faces). ``templates/`` holds the
  theme's macro file without that script, and when the build has finished this
  extension writes subsets of the three webfonts holding only the icons the site
  uses (the ``fa-*`` classes in its pages and scripts, and the icons its style
  sheets name directly), with ``@font-face`` rules that take the place of the
  theme's, and drops the theme's rules for the icons it does not use (20 kB
  gzipped). The icons look the same; the fonts weigh a few kilobytes.
* **Widgets.** myst-nb puts a page's saved widget state in its ``<head>`` and loads
  the ipywidgets HTML manager (457 kB gzipped) on every page that has a widget,
  even a progress bar. Here training's saved progress bars become plain HTML (a
  ``<progress>`` element between tqdm's two texts), the state goes to
  ``_static/widget-state/<page>.json``, and ``lazy-widgets.js`` loads it and the
  manager only when an explorer comes near the viewport (or the page is printed); a
  page with no explorer loads neither. The page stays kernel-free and offline.
* **Figures** are fetched when the reader scrolls near them (``loading="lazy"``).
* **Scripts.** Sphinx and the theme's extensions put their scripts in ``<head>`` as
  plain ``<script src>``: the browser stops reading the page until each has come and
  run (about a second on a phone's slow connection). They are all written for a page
  that may not be read yet (they wait for ``DOMContentLoaded``), so here they are
  deferred: fetched at once, run in their order once the page is read. Only
  ``documentation_options.js`` stays as it is: the inline scripts after it use it (and
  the search page keeps all of its scripts: its search script needs them as it loads).
  The page may now be drawn before sphinx-togglebutton's script closes the dropdowns
  (exercises' solutions), so ``static/light-pages.css`` draws them closed from the
  start; nothing moves when the script runs.
* **Search.** The theme loads Sphinx's search scripts and the site's search index
  (35 kB gzipped) on every page, for a search-as-you-type box this site does not turn
  on; ``templates/layout.html`` loads them there only when it is turned on. The
  search page loads them as before.
"""

from __future__ import annotations

import functools
import html
import json
import re
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
LOADER = "lazy-widgets.js"
STATE_TYPE = "application/vnd.jupyter.widget-state+json"
STATE_FOLDER = "_static/widget-state"
VIEW = re.compile(
    r'<script type="application/vnd\.jupyter\.widget-view\+json">(\{.*?\})'
    r"</script>",
    re.S,
)
PROGRESS = ("HTMLModel", "FloatProgressModel", "HTMLModel")  # tqdm.notebook's bar
STYLES = "light-pages.css"  # progress bars; dropdowns closed from the first paint
# Scripts left in the page's way: inline scripts after it read DOCUMENTATION_OPTIONS.
KEEP_BLOCKING = ("documentation_options.js",)
IMAGE = re.compile(r"<img(?![^>]*\bloading=)(\s)")

ICON_CSS = "icons.css"
ICON_FOLDER = "_static/icons"
# The theme's faces: (family, weight, file in _static/vendor/fontawesome/webfonts).
FACES = [
    ("Font Awesome 6 Free", 900, "fa-solid-900"),
    ("Font Awesome 6 Free", 400, "fa-regular-400"),
    ("Font Awesome 6 Brands", 400, "fa-brands-400"),
]
WEBFONTS = "_static/vendor/fontawesome/webfonts"
THEME_CSS = "_static/styles/pydata-sphinx-theme.css"
PRIVATE_USE = re.compile(r"[\ue000-\uf8ff]|\\(f[0-9a-fA-F]{3})\b")
RULE = re.compile(r"([^{}]*)\{([^{}]*)\}")
ICON_SELECTOR = re.compile(r"\.(fa-[a-z0-9-]+)::?before")
ICON_CLASS = re.compile(r"\bfa-[a-z0-9-]+")


def _configure(app: Sphinx, config: Config) -> None:
    config.templates_path = [*config.templates_path, str(TEMPLATES)]
    if str(STATIC) not in config.html_static_path:
        config.html_static_path = [*config.html_static_path, str(STATIC)]


def _add_files(app: Sphinx) -> None:
    if app.builder.format == "html":
        # After the theme's style sheet, so that these @font-face rules take its place.
        app.add_css_file(ICON_CSS, priority=900)
        app.add_css_file(STYLES)


def _defer_widgets(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """Move the page's widget state to a file; load it and the manager on demand."""
    scripts = context.get("script_files")
    # Sphinx names a local script by its path in the site ("_static/..."), a remote one
    # by its address.
    managers = {
        name if "://" in name else f"_static/{name}"
        for name in getattr(app.config, "nb_ipywidgets_js", {}) or {}
    }
    if not scripts or not managers:
        return
    state = [
        s for s in scripts if getattr(s, "attributes", {}).get("type") == STATE_TYPE
    ]
    manager = [s for s in scripts if getattr(s, "filename", None) in managers]
    if not state and not manager:
        return
    if len(state) != 1 or len(manager) != 1:
        logger.warning(
            "light_pages: %s has %d widget states and %d widget managers; "
            "its widgets load as myst-nb wrote them",
            pagename,
            len(state),
            len(manager),
        )
        return
    body = state[0].attributes["body"]
    context["body"] = VIEW.sub(
        functools.partial(_progress_bar, json.loads(body)["state"]),
        context.get("body", ""),
    )
    scripts[:] = [s for s in scripts if s is not state[0] and s is not manager[0]]
    if not VIEW.search(context["body"]):  # progress bars only: no manager at all
        return
    target = Path(app.outdir) / STATE_FOLDER / f"{pagename}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(body, encoding="utf-8")
    source = manager[0].filename
    manager_url = source if "://" in source else context["pathto"](source, 1)
    app.add_js_file(
        LOADER,
        loading_method="defer",
        **{
            "data-state": context["pathto"](f"{STATE_FOLDER}/{pagename}.json", 1),
            "data-manager": manager_url,
        },
    )


def _defer_scripts(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """Every external script of the page deferred, but the one inline scripts need."""
    from sphinx.builders.html._assets import _JavaScript

    scripts = context.get("script_files")
    # The search page's template adds Sphinx's search script, which needs doctools.js
    # as it loads: that page keeps its scripts as they are.
    if not scripts or pagename == "search":
        return
    for index, script in enumerate(scripts):
        filename = str(getattr(script, "filename", "") or "")
        attributes = getattr(script, "attributes", None)
        if (
            attributes is None
            or not filename
            or attributes.get("body")
            or {"async", "defer"} & set(attributes)
            or "://" in filename
            or filename.endswith(KEEP_BLOCKING)
        ):
            continue
        scripts[index] = _JavaScript(
            filename, priority=script.priority, **{**attributes, "defer": "defer"}
        )


def _lazy_images(
    app: Sphinx, pagename: str, templatename: str, context: dict, doctree
) -> None:
    """The browser fetches a figure only when the reader scrolls near it."""
    if context.get("body"):
        context["body"] = IMAGE.sub(
            r'<img loading="lazy" decoding="async"\1', context["body"]
        )


def _progress_bar(state: dict, match: re.Match) -> str:
    """A saved tqdm progress bar (a box of text, bar, text) as plain HTML, so that a page
    needs the widget manager only for its explorers; any other widget is left as it is."""
    view = json.loads(match.group(1))
    box = state.get(view.get("model_id"), {})
    children = [
        state.get(child.removeprefix("IPY_MODEL_"), {})
        for child in box.get("state", {}).get("children", [])
    ]
    if (
        box.get("model_name") != "HBoxModel"
        or tuple(child.get("model_name") for child in children) != PROGRESS
    ):
        return match.group(0)
    left, bar, right = (child["state"] for child in children)
    label = html.unescape(re.sub(r"<[^>]*>", "", left.get("value", ""))).strip()
    return (
        f'<div class="attnlab-progress" data-style="{html.escape(bar.get("bar_style", ""))}">'
        f"<span>{left.get('value', '')}</span>"
        f'<progress max="{float(bar.get("max", 100)):g}" value="{float(bar.get("value", 0)):g}" '
        f'aria-label="{html.escape(label or "progress")}"></progress>'
        f"<span>{right.get('value', '')}</span></div>"
    )


def _icon_names(selectors: str) -> list[str]:
    """The icon classes a rule such as ``.fa-x:before, .fa-y:before`` draws; [] for any
    rule with another selector."""
    listed = [s.strip() for s in selectors.split(",") if s.strip()]
    names = [m.group(1) for m in map(ICON_SELECTOR.fullmatch, listed) if m]
    return names if listed and len(names) == len(listed) else []


def used_icon_classes(outdir: Path) -> set[str]:
    """The ``fa-*`` classes in the site's pages and in the scripts they load."""
    static = outdir / "_static"
    texts = [p for p in outdir.rglob("*.html") if STATE_FOLDER not in p.as_posix()]
    # Not the icon script the pages no longer load, nor the vendored files (the widget
    # manager names every Font Awesome 4 icon, drawn with its own fonts).
    texts += [
        p
        for p in static.rglob("*.js")
        if p.name != "fontawesome.js" and "vendor" not in p.relative_to(static).parts
    ]
    used = set()
    for path in texts:
        used.update(
            ICON_CLASS.findall(path.read_text(encoding="utf-8", errors="replace"))
        )
    return used


def used_codepoints(outdir: Path) -> set[int]:
    """Every icon the built site can show: the ``fa-*`` classes in its pages and
    scripts, looked up in the style sheets, and the icons style sheets use directly."""
    by_class: dict[str, int] = {}
    direct: set[int] = set()
    for sheet in (outdir / "_static").rglob("*.css"):
        if sheet.name == ICON_CSS:
            continue
        for selectors, body in RULE.findall(
            sheet.read_text(encoding="utf-8", errors="replace")
        ):
            points = [
                int(m.group(1), 16) if m.group(1) else ord(m.group(0))
                for m in PRIVATE_USE.finditer(body)
            ]
            if not points:
                continue
            names = _icon_names(selectors)
            for name in names:
                by_class[name] = points[0]
            if not names:
                direct.update(points)
    return direct | {
        by_class[name] for name in used_icon_classes(outdir) if name in by_class
    }


def trim_icon_rules(sheet: Path, used: set[str]) -> int:
    """Drop the rules of ``sheet`` that only draw icons the site never shows (the theme's
    style sheet names all 1,900 of Font Awesome's), and its ``@font-face`` rules for the
    icon fonts, whose place ``icons.css`` takes; return how many went."""
    dropped = 0

    def keep(match: re.Match) -> str:
        nonlocal dropped
        names = _icon_names(match.group(1))
        family = re.search(r"font-family:\s*([^;]+)", match.group(2))
        theirs = (
            match.group(1).strip() == "@font-face"
            and family is not None
            and (
                family.group(1).replace("\\", "").strip("\"' ")
                in {f for f, _, _ in FACES}
            )
        )
        if theirs or (names and not used.intersection(names)):
            dropped += 1
            return ""
        return match.group(0)

    text = RULE.sub(keep, sheet.read_text(encoding="utf-8"))
    staging = sheet.with_name(sheet.name + ".tmp")
    staging.write_text(text, encoding="utf-8")
    staging.replace(sheet)
    return dropped


def _subset_icons(app: Sphinx, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from fontTools import subset

    outdir = Path(app.outdir)
    points = used_codepoints(outdir)
    folder = outdir / ICON_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rules = [
        "/* Subsets of the theme's Font Awesome 6 webfonts holding only the icons this "
        "site uses; written by book/_ext/light_pages.py. Font Awesome Free: fonts "
        "SIL OFL 1.1, https://fontawesome.com/license/free */"
    ]
    for family, weight, stem in FACES:
        source = outdir / WEBFONTS / f"{stem}.ttf"
        if not source.is_file():
            raise FileNotFoundError(
                f"light_pages: the theme's icon font {source} is missing"
            )
        options = subset.Options()
        options.flavor = "woff"  # zlib: no Brotli needed to write it
        options.layout_features = ["*"]
        font = subset.load_font(str(source), options)
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=sorted(points))
        subsetter.subset(font)
        name = f"{stem}.subset.woff"
        subset.save_font(font, str(folder / name), options)
        rules.append(
            f'@font-face{{font-display:block;font-family:"{family}";'
            f"font-style:normal;font-weight:{weight};"
            f'src:url(icons/{name}) format("woff")}}'
        )
    (outdir / "_static" / ICON_CSS).write_text(
        "\n".join(rules) + "\n", encoding="utf-8"
    )
    dropped = trim_icon_rules(outdir / THEME_CSS, used_icon_classes(outdir))
    logger.info(
        "light_pages: %d icons in %s; %d unused icon rules dropped from %s",
        len(points),
        folder,
        dropped,
        THEME_CSS,
    )


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure)
    app.connect("builder-inited", _add_files)
    app.connect("html-page-context", _defer_widgets, priority=950)
    app.connect("html-page-context", _lazy_images, priority=950)
    app.connect("html-page-context", _defer_scripts, priority=960)
    app.connect("build-finished", _subset_icons)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
