"""Using a trained model: greedy decoding, beam search, translating a sentence
(``decoding``), and the attention behind a translation (``inspection``)."""
