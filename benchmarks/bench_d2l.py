"""attnlab's modules against d2l's, with the same weights, shapes and batches.

For every module d2l's package provides (the GRU encoder, additive attention,
multi-head attention, positional encoding, a Transformer encoder block), the
two implementations are first checked to compute the same outputs, then
timed forward-only and forward + backward. Additive attention is also timed
inside a 30-step decoding loop, where d2l projects the keys again at every
step and attnlab projects them once per sentence.

    python benchmarks/bench_d2l.py [--quick] [--device cpu]
"""

from __future__ import annotations

import common
import torch

from attnlab.models.rnn import GRUEncoder
from attnlab.models.selfattention import EncoderLayer
from attnlab.nn.attention import AdditiveAttention
from attnlab.nn.masks import padding_mask
from attnlab.nn.multihead import MultiHeadAttention
from attnlab.nn.positions import SinusoidalPositionalEncoding

LOOP_STEPS = 30


def _share_linear(theirs, ours, bias=True):
    theirs.weight.copy_(ours.weight)
    if bias:
        theirs.bias.copy_(ours.bias)


def contenders(ours_fn, theirs_fn, params, backward: bool):
    """attnlab's and d2l's callables, forward-only or forward + backward."""
    return common.pair(
        {"attnlab": ours_fn, "d2l": theirs_fn}, params, backward=backward
    )


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    device = common.device_of(args)
    d2l = common.load_d2l()
    torch.manual_seed(0)
    B, S, D, V, H = (2, 5, 16, 20, 2) if args.quick else (64, 32, 256, 5000, 4)
    repeats = args.repeats or (1 if args.quick else 20)
    measurements: list[dict] = []
    valid = torch.randint(S // 2 + 1, S + 1, (B,), device=device)
    valid[0] = S

    # --- GRU encoder: equal lengths (d2l has no notion of padding) ---------------------
    ours = GRUEncoder(V, D // 2, D).to(device)
    theirs = d2l.Seq2SeqEncoder(V, D // 2, D, 1, dropout=0.0).to(device)
    theirs.embedding.load_state_dict(ours.embedding.state_dict())
    theirs.rnn.rnn.load_state_dict(ours.gru_state_dict())
    src, full = (
        torch.randint(4, V, (B, S), device=device),
        torch.full((B,), S, device=device),
    )
    common.close(ours(src, full)[0], theirs(src)[0].transpose(0, 1), "GRU encoder")
    params = [*ours.parameters(), *theirs.parameters()]
    for backward in (False, True):
        times = common.race(
            contenders(
                lambda: ours(src, full)[0], lambda: theirs(src)[0], params, backward
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"GRU encoder, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.Seq2SeqEncoder",
            target=1.0,
            shapes=dict(B=B, S=S, H=D),
        )

    # --- additive attention: one call, then inside a decoding loop ---------------------
    additive = AdditiveAttention(D, D, D).to(device)
    reference = d2l.AdditiveAttention(D, dropout=0.0).to(device)
    query, keys = (
        torch.randn(B, 1, D, device=device),
        torch.randn(B, S, D, device=device),
    )
    mask = padding_mask(valid, S)  # (B, 1, S)
    reference(query, keys, keys, valid)  # materialise lazy layers
    with torch.no_grad():
        _share_linear(reference.W_q, additive.W_q, bias=False)
        _share_linear(reference.W_k, additive.W_k, bias=False)
        _share_linear(reference.w_v, additive.v, bias=False)
    common.close(
        additive(query=query, key=keys, value=keys, mask=mask)[0],
        reference(query, keys, keys, valid),
        "additive attention",
    )
    params = [*additive.parameters(), *reference.parameters()]
    for backward in (False, True):
        times = common.race(
            contenders(
                lambda: additive(query=query, key=keys, value=keys, mask=mask)[0],
                lambda: reference(query, keys, keys, valid),
                params,
                backward,
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"additive attention, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.AdditiveAttention",
            target=1.0,
            shapes=dict(B=B, S=S, D=D),
        )
    queries = torch.randn(LOOP_STEPS, B, 1, D, device=device)

    def ours_loop():
        projected = additive.project_keys(keys)  # once per sentence
        return torch.stack(
            [
                additive(
                    query=q, key=keys, value=keys, mask=mask, projected_keys=projected
                )[0]
                for q in queries
            ]
        )

    def theirs_loop():
        return torch.stack([reference(q, keys, keys, valid) for q in queries])

    common.close(ours_loop(), theirs_loop(), "additive attention in a loop")
    for backward in (False, True):
        times = common.race(
            contenders(ours_loop, theirs_loop, params, backward),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"additive attention, {LOOP_STEPS}-step loop, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.AdditiveAttention",
            target=2.0,
            shapes=dict(B=B, S=S, D=D, steps=LOOP_STEPS),
        )

    # --- multi-head attention ---------------------------------------------------------
    mha = MultiHeadAttention(D, H, bias=False).to(device)
    d2l_mha = d2l.MultiHeadAttention(D, H, dropout=0.0, bias=False).to(device)
    x = torch.randn(B, S, D, device=device)
    d2l_mha.eval()
    d2l_mha(x, x, x, valid)
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            _share_linear(getattr(d2l_mha, name), getattr(mha, name), bias=False)
    self_mask = padding_mask(valid, S)
    common.close(
        mha(query=x, key=x, value=x, mask=self_mask)[0],
        d2l_mha(x, x, x, valid),
        "multi-head attention",
    )
    params = [*mha.parameters(), *d2l_mha.parameters()]
    for backward in (False, True):
        times = common.race(
            contenders(
                lambda: mha(query=x, key=x, value=x, mask=self_mask)[0],
                lambda: d2l_mha(x, x, x, valid),
                params,
                backward,
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"multi-head attention, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.MultiHeadAttention",
            target=1.0,
            shapes=dict(B=B, S=S, D=D, H=H),
        )

    # --- positional encoding ----------------------------------------------------------
    positions = SinusoidalPositionalEncoding(D, max_len=1000).to(device)
    d2l_positions = (
        d2l.PositionalEncoding(D, dropout=0.0, max_len=1000).to(device).eval()
    )
    x_grad = torch.randn(B, S, D, device=device, requires_grad=True)
    common.close(positions(x), d2l_positions(x), "positional encoding")
    for backward in (False, True):
        times = common.race(
            contenders(
                lambda: positions(x_grad),
                lambda: d2l_positions(x_grad),
                [x_grad],
                backward,
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"positional encoding, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.PositionalEncoding",
            target=1.0,
            shapes=dict(B=B, S=S, D=D),
        )

    # --- Transformer encoder block ----------------------------------------------------
    layer = EncoderLayer(D, H, 4 * D, dropout=0.0).to(device).eval()
    block = (
        d2l.TransformerEncoderBlock(D, 4 * D, H, dropout=0.0, use_bias=True)
        .to(device)
        .eval()
    )
    block(x, valid)
    with torch.no_grad():
        for name in ("W_q", "W_k", "W_v", "W_o"):
            _share_linear(
                getattr(block.attention, name), getattr(layer.self_attention, name)
            )
        _share_linear(block.ffn.dense1, layer.feed_forward.net[0])
        _share_linear(block.ffn.dense2, layer.feed_forward.net[3])
        block.addnorm1.ln.load_state_dict(layer.residual1.norm.state_dict())
        block.addnorm2.ln.load_state_dict(layer.residual2.norm.state_dict())
    common.close(
        layer(x, self_mask)[0], block(x, valid), "Transformer encoder block", atol=1e-4
    )
    params = [*layer.parameters(), *block.parameters()]
    for backward in (False, True):
        times = common.race(
            contenders(
                lambda: layer(x, self_mask)[0],
                lambda: block(x, valid),
                params,
                backward,
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"Transformer encoder block, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["d2l"],
            peer_name="d2l.TransformerEncoderBlock",
            target=1.0,
            shapes=dict(B=B, S=S, D=D, H=H, d_ff=4 * D),
        )

    common.finish(
        f"attnlab vs d2l ({device}, {repeats} runs each)",
        "d2l",
        args,
        device,
        measurements,
    )


if __name__ == "__main__":
    main()
