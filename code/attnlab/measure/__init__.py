"""Measuring: timing on any device, BLEU and its intervals, held-out evaluation, the
analyses of gradients and step times, and each chapter's recorded results."""
