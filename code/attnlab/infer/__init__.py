"""Using a trained model: greedy decoding, beam search, translating a sentence
(``decoding``), one sentence's beam search step by step (``beams``), and the attention
behind a translation (``inspection``)."""
