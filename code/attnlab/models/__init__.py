"""The contract every model honours (``contract``) and the course's models: the GRU
encoder-decoder (chapter 2), Bahdanau attention (3), the self-attention encoder layer
and tagger (4), the Transformer (5)."""
