"""Synthetic tasks: generated in code, offline, the same for the same seed.

* **Dates**: a date written in one of many human formats -> ISO ``YYYY-MM-DD``,
  character by character. The calendar dates of the test split never appear
  in training, in any format.
* **Reversal**: a random string of letters -> the same string reversed. Its
  difficulty grows with length, which makes the encoder-decoder's bottleneck
  visible.
"""

from __future__ import annotations

import datetime as dt
import random
import string
from collections.abc import Callable

from attnlab.data.dataset import Seq2SeqData, TokenPair
from attnlab.data.vocab import Vocab

MONTHS = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
]
WEEKDAYS = [
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
    "sunday",
]


def _ordinal(day: int) -> str:
    suffix = (
        "th"
        if 11 <= day % 100 <= 13
        else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    )
    return f"{day}{suffix}"


# Each format renders a date unambiguously (the month is named, or the order is fixed).
DATE_FORMATS: dict[str, Callable[[dt.date], str]] = {
    "d month yyyy": lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",
    "month d, yyyy": lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",
    "mon d yyyy": lambda d: f"{MONTHS[d.month - 1][:3]} {d.day} {d.year}",
    "dd mon yy": lambda d: f"{d.day:02d} {MONTHS[d.month - 1][:3]} {d.year % 100:02d}",
    "dd/mm/yyyy": lambda d: f"{d.day:02d}/{d.month:02d}/{d.year}",
    "dd.mm.yyyy": lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",
    "yyyy/mm/dd": lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",
    "weekday, month d, yyyy": lambda d: (
        f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}"
    ),
    "the dth of month yyyy": lambda d: (
        f"the {_ordinal(d.day)} of {MONTHS[d.month - 1]} {d.year}"
    ),
    "dth mon yyyy": lambda d: f"{_ordinal(d.day)} {MONTHS[d.month - 1][:3]} {d.year}",
    "month dth yyyy": lambda d: f"{MONTHS[d.month - 1]} {_ordinal(d.day)} {d.year}",
}

FIRST_DATE, LAST_DATE = dt.date(1950, 1, 1), dt.date(2049, 12, 31)


def date_pair(date: dt.date, fmt: str) -> TokenPair:
    """(characters of ``date`` in format ``fmt``, characters of its ISO form)."""
    return list(DATE_FORMATS[fmt](date)), list(date.isoformat())


def _chars_vocab(pairs: list[TokenPair], which: int) -> Vocab:
    return Vocab(pair[which] for pair in pairs)


def dates_task(
    *,
    n_train: int = 20_000,
    n_val: int = 1_000,
    n_test: int = 1_000,
    test_fraction: float = 0.1,
    seed: int = 0,
) -> Seq2SeqData:
    """Date normalisation: ``"the 3rd of may 1987"`` -> ``"1987-05-03"``.

    ``test_fraction`` of the calendar days from 1950 to 2049 are held out for
    validation and test; training examples are drawn from the others.
    """
    rng = random.Random(seed)
    days = [
        FIRST_DATE + dt.timedelta(days=i)
        for i in range((LAST_DATE - FIRST_DATE).days + 1)
    ]
    rng.shuffle(days)
    n_held = int(len(days) * test_fraction)
    held, seen = days[:n_held], days[n_held:]
    val_days, test_days = held[: n_held // 2], held[n_held // 2 :]
    formats = sorted(DATE_FORMATS)

    def draw(pool: list[dt.date], n: int) -> list[TokenPair]:
        return [date_pair(rng.choice(pool), rng.choice(formats)) for _ in range(n)]

    train, val, test = (
        draw(seen, n_train),
        draw(val_days, n_val),
        draw(test_days, n_test),
    )
    # The vocabularies cover every character any format can produce.
    every = [date_pair(day, fmt) for day in days[:400] for fmt in formats]
    return Seq2SeqData(
        "dates",
        train,
        val,
        test,
        _chars_vocab(every, 0),
        _chars_vocab(every, 1),
        info={"seed": seed, "formats": len(formats), "held_out_days": n_held},
        units="symbols",
        length_edges=(10, 15, 20, 30),
    )


def length_edges(min_len: int, max_len: int) -> tuple[int, ...]:
    """Where evaluation by length cuts the strings of a synthetic task: every 5 symbols
    up to 20, then every 10, up to ``max_len``."""
    edges = [e for e in (5, 10, 15, 20, 30, 40, 60, 80) if min_len <= e < max_len]
    return (*edges, max_len)


def reversal_task(
    *,
    n_train: int = 20_000,
    n_val: int = 1_000,
    n_test: int = 2_000,
    min_len: int = 5,
    max_len: int = 40,
    alphabet: str = string.ascii_lowercase,
    seed: int = 0,
) -> Seq2SeqData:
    """Sequence reversal: ``"a b c"`` -> ``"c b a"``, lengths uniform in [min_len,
    max_len].

    Validation and test strings never occur in training.
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    rng = random.Random(seed)

    def draw(n: int, avoid: set[str]) -> list[TokenPair]:
        out: list[TokenPair] = []
        while len(out) < n:
            seq = [rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))]
            if "".join(seq) not in avoid:
                avoid.add("".join(seq))
                out.append((seq, seq[::-1]))
        return out

    test = draw(n_test, set())
    val = draw(n_val, {"".join(s) for s, _ in test})
    held = {"".join(s) for s, _ in test + val}
    train = [pair for pair in draw(n_train, set()) if "".join(pair[0]) not in held]
    vocab = Vocab([list(alphabet)])
    return Seq2SeqData(
        "reversal",
        train,
        val,
        test,
        vocab,
        vocab,
        info={"seed": seed, "min_len": min_len, "max_len": max_len},
        units="symbols",
        length_edges=length_edges(min_len, max_len),
    )
