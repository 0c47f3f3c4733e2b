"""attnlab: the library behind the course "Attention, step by step".

The layers, each importing only from itself and those above it (a test reads
the imports and holds every module to this)::

    foundations   files, runtime, timing
        |
    data          corpus, vocab, masks, batching, data, synthetic, subwords
        |
    models        contract, layers, positions, attention, multihead,
        |         rnn, bahdanau, selfattention, transformer
        |
    training      training, resume, checkpoints, decoding
        |
    evaluation    metrics, evaluation, inspection, analysis, compare, results,
        |         experiments, checking, check, lab
        |
    presentation  plots, widgets, explorer, notebook,   (the only users of ipywidgets)
                  export

One line a module:

- ``files``: atomic writes and a lock per cache entry; nothing is left half written.
- ``runtime``: profile (smoke/full), device, seeds, the build and cache folders.
- ``timing``: timing calls on any device (synchronised), interleaved races.
- ``corpus``: the English-French corpus (download, checksum, normalisation, tokens).
- ``vocab``: tokens to ids and back, with ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``.
- ``masks``: padding, causal and length masks; True = may attend, one meaning per shape.
- ``batching``: padded batches for teacher forcing, length buckets, loaders.
- ``data``: a task's three splits, vocabularies and self-description (``Seq2SeqData``).
- ``synthetic``: the reversal and dates tasks.
- ``subwords``: byte-pair encoding learnt on a training split; tasks in subwords.
- ``contract``: what every model offers (``Seq2SeqModel``, ``Generator``), its outputs
  (``Seq2SeqOutput``, ``Step``) and registration.
- ``layers``: embedding initialisation, feed-forward network, residual connection.
- ``positions``: sinusoidal and learned positional encodings.
- ``attention``: scores, masked softmax, additive and scaled dot-product attention.
- ``multihead``: multi-head attention and its projected keys and values (``KeyValue``).
- ``rnn``: chapter 2's GRU encoder-decoder.
- ``bahdanau``: chapter 3's attention model.
- ``selfattention``: the encoder layer, and chapter 4's self-attention tagger.
- ``transformer``: chapter 5's Transformer (decoder layer, key/value cache).
- ``training``: the masked loss, one training step, the trainer, schedules.
- ``resume``: resume points, so an interrupted training goes on bit for bit.
- ``checkpoints``: saving and loading models, the model cache keyed by the code.
- ``decoding``: greedy decoding, beam search, translating a sentence.
- ``metrics``: BLEU (sacreBLEU), its bootstrap intervals and paired test; exact match.
- ``evaluation``: scoring a trained model on a data set's held-out split.
- ``inspection``: the attention behind a translation, for every model.
- ``analysis``: gradients by source position, step time by length.
- ``compare``: the same measurements for every model (chapters 5 and 6).
- ``results``: each chapter's headline numbers, as JSON.
- ``experiments``: the course's shared settings, budgets and model factories.
- ``checking``: how a learner's function is checked against the library's, in words.
- ``check``: the checkers of the write-it exercises (``check.masked_softmax(mine)``).
- ``lab``: the debugging lab's models with planted bugs, and the probes that find them.
- ``plots``: figures (matplotlib), the live loss curve.
- ``widgets``: widgets that work on the static website and live, on ipywidgets 7 and 8.
- ``explorer``: the attention explorers.
- ``notebook``: a chapter's setup cell and ``show_source``.
- ``export``: the trained models for the website's live translation (ONNX).

Shapes use one alphabet everywhere, as in the papers: B batch, S source length,
T target length, D model width, h heads, N layers, V vocabulary size, d_k key
width (D / h), d_ff feed-forward width, k beam width. An RNN's sizes are
written out (``hidden``, ``embed``), never given a letter.
"""

# The one place the version is defined (pyproject.toml reads it; see CHANGELOG.md).
__version__ = "0.1.0"
