"""The course's shared settings, budgets and model factories (``experiments``): what
each chapter trains, in one place; and the command that trains one of those models on
one process or several under ``torchrun`` (``scale``). Its code keys the model cache,
with the layers below."""
