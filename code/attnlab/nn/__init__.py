"""Building blocks in tensors, knowing nothing of text: masks, embeddings and the
feed-forward and residual layers, positional encodings, attention and multi-head
attention, and the batch-first dataclasses whose rows beam search picks
(``batched``)."""
