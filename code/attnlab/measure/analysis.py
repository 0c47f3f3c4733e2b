"""Measurements behind the course's claims: gradients by source position and step time
by length."""

from __future__ import annotations

import torch
from torch import nn

from attnlab.data.batching import Batch, random_batch
from attnlab.measure.timing import race
from attnlab.train.training import Trainer, batch_loss


def source_gradient_norms(
    model: nn.Module,
    batch: Batch,
    *,
    embedding: nn.Embedding | None = None,
    pad_id: int = 0,
) -> torch.Tensor:
    """How strongly the loss reaches back to each source token.

    Returns (B, S): the norm of the gradient of the batch's loss with respect to
    each source position's embedding (0 at padding). ``embedding`` defaults to
    ``model.encoder.embedding``.
    """
    embedding = embedding if embedding is not None else model.encoder.embedding
    captured = {}

    def keep(module, inputs, output):
        output.retain_grad()
        captured["embedded"] = output

    handle = embedding.register_forward_hook(keep)
    was_training = model.training
    model.eval()  # no dropout: the gradient of the model itself
    try:
        model.zero_grad(set_to_none=True)
        # cuDNN's recurrent layers refuse a backward pass in evaluation mode; PyTorch's
        # own do not (and compute the same gradient).
        with torch.backends.cudnn.flags(enabled=False):
            batch_loss(model, batch, pad_id=pad_id).backward()
    finally:
        handle.remove()
        model.train(was_training)
    norms = captured["embedded"].grad.norm(dim=-1)  # (B, S)
    model.zero_grad(set_to_none=True)
    return norms * batch.src_mask


def by_distance_from_end(norms: torch.Tensor, src_len: torch.Tensor) -> torch.Tensor:
    """(B, S) per-position values -> (S,) mean by distance from the sentence's last
    token (index 0 = the last token, which is ``<eos>``), over the sentences long
    enough."""
    batch, width = norms.shape
    total, count = torch.zeros(width), torch.zeros(width)
    for row in range(batch):
        n = int(src_len[row])
        total[:n] += norms[row, :n].flip(0).detach().cpu()
        count[:n] += 1
    return total / count.clamp(min=1)


def time_training_step(
    model: nn.Module,
    *,
    src_vocab: int,
    tgt_vocab: int,
    lengths: list[int],
    batch_size: int = 32,
    repeats: int = 5,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    seed: int = 0,
    flush_denormal: bool = True,
) -> list[dict]:
    """Median time of one training step (forward, backward, Adam) on random sequences of
    each length (source and target of the same length), for a model taking
    ``src``, ``src_len`` and ``tgt_in``.

    On a CPU, gradients that vanish through a long recurrence become denormal
    floats, on which arithmetic is many times slower; with ``flush_denormal``
    (the default) they are flushed to zero during the measurement, so that it
    times the computation rather than that artefact. The setting is restored
    to PyTorch's default (off) afterwards.
    """
    if flush_denormal:
        torch.set_flush_denormal(True)
    try:
        return _time_steps(
            model,
            src_vocab,
            tgt_vocab,
            lengths,
            batch_size,
            repeats,
            warmup,
            device,
            seed,
        )
    finally:
        if flush_denormal:
            torch.set_flush_denormal(False)


def _time_steps(
    model, src_vocab, tgt_vocab, lengths, batch_size, repeats, warmup, device, seed
):
    model = model.to(device)
    # the course's training step, dropout and all (Adam without clipping)
    trainer = Trainer(
        model,
        optimizer=torch.optim.Adam(model.parameters(), lr=1e-4),
        clip=None,
        device=device,
    )
    generator = torch.Generator().manual_seed(seed)
    results = []
    for length in lengths:
        batch = random_batch(
            src_vocab, tgt_vocab, length, batch_size, generator=generator, device=device
        )
        timing = race(
            {"step": lambda: trainer.step(batch)},
            device=device,
            repeats=repeats,
            warmup=warmup,
        )["step"]
        results.append(
            {"length": length, "seconds": timing["median"], "spread": timing["spread"]}
        )
    return results


def parallel_and_sequential(
    model: nn.Module,
    *,
    vocab: int,
    batch_size: int,
    length: int,
    factors: list[int],
    repeats: int = 3,
    warmup: int = 1,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> dict[str, list[dict]]:
    """One training step's time as the tokens per step grow by each of ``factors``, two
    ways from the same start (``batch_size`` sentences of ``length`` tokens):

    * ``"batch"``: more sentences of the same length, independent of each other, which
      any model can process side by side;
    * ``"length"``: the same number of longer sentences, whose positions a recurrent
      model must process one after another.

    Each row has ``tokens`` (batch x length), ``batch``, ``length``, ``seconds`` and
    ``spread``. Equal times along both ways mean the work is parallel in both; time
    growing only along ``"length"`` means sequential work.
    """
    if not factors or min(factors) < 1:
        raise ValueError(f"factors must be positive integers, got {factors!r}")
    by_batch = []
    for factor in factors:
        (row,) = time_training_step(
            model,
            src_vocab=vocab,
            tgt_vocab=vocab,
            lengths=[length],
            batch_size=batch_size * factor,
            repeats=repeats,
            warmup=warmup,
            device=device,
            seed=seed,
        )
        by_batch.append({**row, "batch": batch_size * factor})
    by_length = [
        {**row, "batch": batch_size}
        for row in time_training_step(
            model,
            src_vocab=vocab,
            tgt_vocab=vocab,
            lengths=[length * f for f in factors],
            batch_size=batch_size,
            repeats=repeats,
            warmup=warmup,
            device=device,
            seed=seed,
        )
    ]
    for row in by_batch + by_length:
        row["tokens"] = row["batch"] * row["length"]
    return {"batch": by_batch, "length": by_length}


def gradient_norms_during_training(
    model: nn.Module,
    batches: list[Batch],
    *,
    lr: float,
    clip: float | None,
    device: torch.device | str = "cpu",
) -> dict[str, list]:
    """Train ``model`` with Adam at ``lr`` for one step per batch of ``batches``,
    clipping the gradient's norm at ``clip`` (``None``: never), and record at every
    step the norm of the whole gradient **before** clipping and the loss.

    Returns ``{"norms": [...], "losses": [...]}``, one value per step.
    """
    model = model.to(device)
    trainer = Trainer(
        model,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        clip=clip,
        device=device,
    )
    norms, losses = [], []
    for batch in batches:
        result = trainer.step(batch)
        norms.append(float(result.grad_norm))
        losses.append(float(result.loss))
    return {"norms": norms, "losses": losses}


def recurrent_jacobian_norms(
    spectral_radius: float,
    *,
    steps: int,
    hidden: int = 32,
    nonlinear: bool = True,
    input_scale: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Backpropagation through time in a plain RNN, ``h_s = tanh(W h_{s-1} + x_s)``,
    under controlled conditions: ``W`` is a random orthogonal matrix times
    ``spectral_radius`` (every eigenvalue then has that modulus), the inputs are random
    (``input_scale`` times a standard normal). Returns, for ``k = 0 .. steps``, the norm
    of the gradient of ``u . h_S`` with respect to ``h_{S-k}``, for a fixed unit
    vector ``u``: how much of a signal at the end reaches the state ``k`` steps
    back. Without the tanh (``nonlinear=False``) it is exactly
    ``spectral_radius ** k``."""
    if spectral_radius <= 0 or steps < 1:
        raise ValueError(
            "need a positive spectral radius and at least one step, got "
            f"{spectral_radius} and {steps}"
        )
    generator = torch.Generator().manual_seed(seed)
    orthogonal, _ = torch.linalg.qr(
        torch.randn(hidden, hidden, generator=generator, dtype=torch.float64)
    )
    weight = spectral_radius * orthogonal
    inputs = input_scale * torch.randn(
        steps, hidden, generator=generator, dtype=torch.float64
    )
    direction = torch.randn(hidden, generator=generator, dtype=torch.float64)
    direction = direction / direction.norm()
    states = [torch.zeros(hidden, dtype=torch.float64, requires_grad=True)]
    for x in inputs:
        pre = weight @ states[-1] + x
        states.append(torch.tanh(pre) if nonlinear else pre)
        states[-1].retain_grad()
    (direction @ states[-1]).backward()
    return [float(states[-1 - k].grad.norm()) for k in range(steps + 1)]


def updates_around_a_spike(
    model: nn.Module,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    *,
    spike: float,
    before: int = 10,
    after: int = 20,
    clip: float | None = None,
) -> list[float]:
    """The size (norm of the change of all parameters) of each of ``before + 1 +
    after`` updates of ``optimizer`` on the same ``batch``, where the gradient of the
    update at index ``before`` is multiplied by ``spike``: an exploding gradient made
    to order. With ``clip``, every gradient's norm is clipped at it first, as the
    course's trainer does."""
    if spike <= 0:
        raise ValueError(f"spike must be positive, got {spike}")
    trainer = Trainer(
        model, optimizer=optimizer, clip=clip, device=next(model.parameters()).device
    )
    sizes = []
    for step in range(before + 1 + after):
        old = [p.detach().clone() for p in model.parameters()]
        trainer.step(batch, gradient_scale=spike if step == before else 1.0)
        sizes.append(
            float(
                torch.sqrt(
                    sum(
                        ((p.detach() - o) ** 2).sum()
                        for p, o in zip(model.parameters(), old)
                    )
                )
            )
        )
    return sizes
