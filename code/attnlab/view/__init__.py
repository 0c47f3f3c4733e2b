"""What a page shows: figures, widgets that work on the static website, the attention
explorers and a chapter's setup cell. The only users of matplotlib, ipywidgets and
IPython."""
