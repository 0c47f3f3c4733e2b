"""Using a trained model: greedy decoding, beam search, translating a sentence
(``decoding``), one sentence's beam search step by step (``beams``), a translation whose
first words are forced (``forcing``), a Transformer with some heads switched off
(``heads``), and the attention behind a translation (``inspection``)."""
