"""A vocabulary: tokens to integer ids and back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
RESERVED = (PAD, BOS, EOS, UNK)


class Vocab:
    """Ids for the reserved tokens first (``<pad>``=0, ``<bos>``=1, ``<eos>``=2,
    ``<unk>``=3), then every token seen at least ``min_freq`` times, most frequent
    first (ties in alphabetical order, so the same corpus always gives the same ids).
    """

    def __init__(
        self,
        sentences: Iterable[Sequence[str]] = (),
        *,
        min_freq: int = 1,
        tokens: Sequence[str] | None = None,
    ):
        if min_freq < 1:
            raise ValueError(f"min_freq must be at least 1, got {min_freq}")
        self.min_freq = min_freq
        if tokens is None:
            counts = Counter(token for sentence in sentences for token in sentence)
            kept = sorted(
                (t for t, c in counts.items() if c >= min_freq and t not in RESERVED),
                key=lambda t: (-counts[t], t),
            )
            tokens = [*RESERVED, *kept]
        if tuple(tokens[: len(RESERVED)]) != RESERVED:
            raise ValueError(
                f"a vocabulary must start with the reserved tokens {RESERVED}"
            )
        if len(set(tokens)) != len(tokens):
            raise ValueError("a vocabulary cannot list a token twice")
        self.itos: list[str] = list(tokens)
        self.stoi: dict[str, int] = {token: i for i, token in enumerate(self.itos)}

    pad_id, bos_id, eos_id, unk_id = 0, 1, 2, 3

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocab) and self.itos == other.itos

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, min_freq={self.min_freq})"

    def encode(self, tokens: Sequence[str]) -> list[int]:
        """Ids of ``tokens``; unknown tokens become ``<unk>``."""
        return [self.stoi.get(token, self.unk_id) for token in tokens]

    def decode(self, ids: Iterable[int], *, strip: bool = True) -> list[str]:
        """Tokens of ``ids``. With ``strip``, stop at ``<eos>`` and drop
        ``<pad>``/``<bos>``."""
        out = []
        for i in ids:
            i = int(i)
            if strip and i == self.eos_id:
                break
            if strip and i in (self.pad_id, self.bos_id):
                continue
            out.append(self.itos[i])
        return out

    def coverage(self, sentences: Iterable[Sequence[str]]) -> float:
        """The fraction of running tokens in ``sentences`` that the vocabulary knows."""
        total = known = 0
        for sentence in sentences:
            total += len(sentence)
            known += sum(token in self.stoi for token in sentence)
        return known / total if total else 1.0

    def to_dict(self) -> dict:
        return {"tokens": list(self.itos), "min_freq": self.min_freq}

    @classmethod
    def from_dict(cls, state: dict) -> "Vocab":
        return cls(tokens=state["tokens"], min_freq=state.get("min_freq", 1))
