"""Text to tensors: the corpus, vocabularies, padded batches, a task's three splits
(``dataset``), the synthetic tasks and subwords."""
