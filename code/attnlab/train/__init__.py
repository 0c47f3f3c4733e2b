"""Training: the loss, one step, the trainer and schedules (``training``), resume points
(``resume``), and the model cache keyed by the code that trains (``checkpoints``)."""
