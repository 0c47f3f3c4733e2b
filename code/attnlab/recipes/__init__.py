"""The course's shared settings, budgets and model factories (``experiments``): what
each chapter trains, in one place. Its code keys the model cache, with the layers
below."""
