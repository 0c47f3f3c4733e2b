"""attnlab against PyTorch's built-ins: multi-head attention and the whole Transformer.

Our ``MultiHeadAttention`` against ``torch.nn.MultiheadAttention``, and our
``Transformer`` against ``torch.nn.Transformer`` at equal size (same
embeddings, positions and output layer around it), with the same weights:
first checked to compute the same outputs, then timed. The Transformer is
timed as training throughput: target tokens per second of whole training steps
(forward, loss, backward, Adam).

    python benchmarks/bench_torch.py [--quick] [--device cpu]
"""

from __future__ import annotations

import common
import torch
from torch import nn

from attnlab.data.batching import random_batch
from attnlab.models.contract import Seq2SeqOutput
from attnlab.models.transformer import Transformer
from attnlab.nn.masks import causal_mask, padding_mask
from attnlab.nn.multihead import MultiHeadAttention
from attnlab.train.training import Trainer


def share_attention(theirs: nn.MultiheadAttention, ours: MultiHeadAttention) -> None:
    with torch.no_grad():
        theirs.in_proj_weight.copy_(
            torch.cat([ours.W_q.weight, ours.W_k.weight, ours.W_v.weight])
        )
        theirs.in_proj_bias.copy_(
            torch.cat([ours.W_q.bias, ours.W_k.bias, ours.W_v.bias])
        )
        theirs.out_proj.weight.copy_(ours.W_o.weight)
        theirs.out_proj.bias.copy_(ours.W_o.bias)


class TorchTransformer(nn.Module):
    """``torch.nn.Transformer`` inside our model's embeddings, positions and output layer,
    with our weights, so that only the layers differ."""

    def __init__(self, ours: Transformer):
        super().__init__()
        c = ours.config
        self.ours = ours
        self.core = nn.Transformer(
            c["d_model"],
            c["num_heads"],
            c["num_layers"],
            c["num_layers"],
            c["d_ff"],
            c["dropout"],
            batch_first=True,
            norm_first=c["norm_first"],
        )
        if not c[
            "norm_first"
        ]:  # post-norm: nn.Transformer's extra final norms are not in the paper
            self.core.encoder.norm = None
            self.core.decoder.norm = None
        with torch.no_grad():
            for theirs, mine in zip(self.core.encoder.layers, ours.encoder):
                share_attention(theirs.self_attn, mine.self_attention)
                theirs.linear1.load_state_dict(mine.feed_forward.net[0].state_dict())
                theirs.linear2.load_state_dict(mine.feed_forward.net[3].state_dict())
                theirs.norm1.load_state_dict(mine.residual1.norm.state_dict())
                theirs.norm2.load_state_dict(mine.residual2.norm.state_dict())
            for theirs, mine in zip(self.core.decoder.layers, ours.decoder):
                share_attention(theirs.self_attn, mine.self_attention)
                share_attention(theirs.multihead_attn, mine.cross_attention)
                theirs.linear1.load_state_dict(mine.feed_forward.net[0].state_dict())
                theirs.linear2.load_state_dict(mine.feed_forward.net[3].state_dict())
                for norm, residual in zip(
                    (theirs.norm1, theirs.norm2, theirs.norm3), mine.residuals
                ):
                    norm.load_state_dict(residual.norm.state_dict())

    def forward(self, *, src, src_len, tgt_in):
        ours, T = self.ours, tgt_in.shape[1]
        pad = ~padding_mask(src_len, src.shape[1])[:, 0]  # True = padding
        x = ours.positions(ours.src_embedding(src) * ours.scale)
        y = ours.positions(ours.tgt_embedding(tgt_in) * ours.scale)
        out = self.core(
            x,
            y,
            tgt_mask=~causal_mask(T, src.device),
            src_key_padding_mask=pad,
            memory_key_padding_mask=pad,
            tgt_is_causal=True,
        )
        return Seq2SeqOutput(ours.out(out))


def main() -> None:
    args = common.arguments(__doc__.splitlines()[0])
    device = common.device_of(args)
    torch.manual_seed(0)
    quick = args.quick
    repeats = args.repeats or (1 if quick else 20)
    measurements: list[dict] = []

    # --- multi-head attention ---------------------------------------------------------
    B, S, D, H = (2, 5, 16, 2) if quick else (64, 32, 256, 4)
    ours = MultiHeadAttention(D, H).to(device)
    theirs = nn.MultiheadAttention(D, H, batch_first=True).to(device)
    share_attention(theirs, ours)
    x = torch.randn(B, S, D, device=device)
    valid = torch.randint(S // 2 + 1, S + 1, (B,), device=device)
    mask = padding_mask(valid, S)
    common.close(
        ours(query=x, key=x, value=x, mask=mask)[0],
        theirs(x, x, x, key_padding_mask=~mask[:, 0], need_weights=False)[0],
        "multi-head attention",
    )
    params = [*ours.parameters(), *theirs.parameters()]
    for backward in (False, True):
        times = common.race(
            common.pair(
                {
                    "attnlab": lambda: ours(query=x, key=x, value=x, mask=mask)[0],
                    "torch": lambda: theirs(
                        x, x, x, key_padding_mask=~mask[:, 0], need_weights=False
                    )[0],
                },
                params,
                backward=backward,
            ),
            device=device,
            repeats=repeats,
        )
        common.row(
            measurements,
            name=f"multi-head attention, {'fwd+bwd' if backward else 'forward'}",
            ours=times["attnlab"],
            peer=times["torch"],
            peer_name="nn.MultiheadAttention",
            target=0.9,
            shapes=dict(B=B, S=S, D=D, H=H),
        )

    # --- the whole Transformer: training throughput --------------------------------------
    sizes = (
        [dict(d_model=16, num_heads=2, d_ff=32, vocab=30, batch=2, length=5)]
        if quick
        else [
            dict(d_model=128, num_heads=4, d_ff=512, vocab=5000, batch=128, length=12),
            dict(d_model=256, num_heads=4, d_ff=1024, vocab=5000, batch=64, length=32),
        ]
    )
    for size in sizes:
        V, B, T = size["vocab"], size["batch"], size["length"]
        model = Transformer(
            V,
            V,
            d_model=size["d_model"],
            num_heads=size["num_heads"],
            num_layers=2,
            d_ff=size["d_ff"],
            dropout=0.1,
        ).to(device)
        peer = TorchTransformer(model).to(device)
        batch = random_batch(V, V, T, B, device=device)
        batch.src_len = torch.randint(
            T // 2 + 1, T + 1, (B,), device=device
        )  # some padding
        batch.src_len[0] = T
        inputs = dict(src=batch.src, src_len=batch.src_len, tgt_in=batch.tgt_in)
        model.eval()
        peer.eval()
        with torch.no_grad():
            common.close(
                model(**inputs).logits, peer(**inputs).logits, "Transformer", atol=1e-4
            )

        def training_step(net):
            trainer = Trainer(
                net,
                optimizer=torch.optim.Adam(net.parameters(), lr=1e-4),
                clip=None,
                device=device,
            )
            return lambda: trainer.step(batch)

        times = common.race(
            {"attnlab": training_step(model), "torch": training_step(peer)},
            device=device,
            repeats=repeats,
        )
        tokens = B * T
        entry = common.row(
            measurements,
            name=f"Transformer training step, D={size['d_model']}",
            ours=times["attnlab"],
            peer=times["torch"],
            peer_name="nn.Transformer",
            target=0.9,
            shapes=dict(
                B=B, S=T, T=T, D=size["d_model"], d_ff=size["d_ff"], V=V, layers="2+2"
            ),
        )
        entry["tokens_per_second"] = {
            "attnlab": tokens / times["attnlab"]["median"],
            "torch": tokens / times["torch"]["median"],
        }

    common.finish(
        f"attnlab vs PyTorch built-ins ({device}, {repeats} runs each)",
        "torch",
        args,
        device,
        measurements,
    )
    for m in measurements:
        if "tokens_per_second" in m:
            tps = m["tokens_per_second"]
            print(
                f"  {m['name']}: {tps['attnlab']:,.0f} target tokens/s (torch {tps['torch']:,.0f})"
            )


if __name__ == "__main__":
    main()
