"""attnlab: the library behind the course "Attention, step by step".

Each folder is a layer; a module imports only from its own layer and those below it,
and two layers side by side (``|``) not from each other. ``import-linter`` holds the
code to this diagram (``[tool.importlinter]`` in pyproject.toml)::

    course | web
      recipes
    measure | view
    train | infer
       models
        data
         nn
        core

One line a subpackage:

- ``core``: the profile, device, seeds and folders; atomic files (runtime, files).
- ``nn``: the building blocks, knowing nothing of text: masks, layers, positional
  encodings, attention, multi-head attention, the batch-first dataclasses beam search
  selects from (masks, layers, positions, attention, multihead, batched).
- ``data``: corpus, vocabularies, batches, a task's splits, synthetic tasks, subwords
  (corpus, vocab, batching, dataset, synthetic, subwords).
- ``models``: the contract, and the GRU, Bahdanau, self-attention and Transformer
  models (contract, rnn, bahdanau, selfattention, transformer).
- ``train``: the loss, the step, the trainer; resume points; the model cache; several
  processes under torchrun (training, resume, checkpoints, distributed).
- ``infer``: greedy decoding, beam search, one sentence's beam step by step, a
  forced prefix, heads switched off, the attention behind a translation
  (decoding, beams, forcing, heads, inspection).
- ``measure``: timing, BLEU, held-out evaluation, analyses, recorded results
  (timing, metrics, evaluation, analysis, results).
- ``recipes``: the shared settings, budgets and model factories; the training command,
  on one process or under torchrun (experiments, scale).
- ``view``: figures, widgets, explorers, a chapter's setup cell, the only users of
  matplotlib, ipywidgets and IPython (plots, widgets, explorer, notebook).
- ``course``: the comparisons of chapters 5 and 6, the exercise checkers, the
  debugging lab (compare, checking, check, lab).
- ``web``: the models exported for the website's live translation (export).

A trained model is cached under the code of ``core``, ``nn``, ``data``, ``models``,
``train`` and ``recipes`` (:func:`attnlab.train.checkpoints.code_hash`): editing a
module there retrains, editing one elsewhere never does.

Shapes use one alphabet everywhere, as in the papers: B batch, S source length,
T target length, D model width, h heads, N layers, V vocabulary size, d_k key
width (D / h), d_ff feed-forward width, k beam width. An RNN's sizes are
written out (``hidden``, ``embed``), never given a letter.
"""

# The one place the version is defined (pyproject.toml reads it; see CHANGELOG.md).
__version__ = "0.1.0"
