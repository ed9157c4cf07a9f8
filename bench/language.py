"""How well the language guesser (agent.language) tells German from English subjects.

Prints, per labelled file in tests/data/language/: right, wrong, undecided (the guesser
says nothing and the next clue decides), and the same for whole conversations of 3 subjects.
"""

from __future__ import annotations

import random
from pathlib import Path

from agent.language import of_texts

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "language"


def labelled(name: str) -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / name).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            language, text = line.split("\t", 1)
            if language in ("de", "en"):
                rows.append((language, text))
    return rows


def score(cases: list[tuple[str, list[str]]]) -> tuple[int, int, int]:
    right = wrong = undecided = 0
    for language, texts in cases:
        found = of_texts(texts)
        if found is None:
            undecided += 1
        elif found == language:
            right += 1
        else:
            wrong += 1
    return right, wrong, undecided


def main() -> None:
    rng = random.Random(7)
    print(f"{'file':<14} {'unit':<14} {'right':>6} {'wrong':>6} {'undecided':>10}")
    for name in ("subjects.tsv", "heldout.tsv"):
        rows = labelled(name)
        singles = [(language, [text]) for language, text in rows]
        threes = []
        for language in ("de", "en"):
            texts = [t for lang, t in rows if lang == language]
            threes += [(language, rng.sample(texts, 3)) for _ in range(200)]
        for unit, cases in (("one subject", singles), ("3 subjects", threes)):
            right, wrong, undecided = score(cases)
            print(f"{name:<14} {unit:<14} {right:>6} {wrong:>6} {undecided:>10}")


if __name__ == "__main__":
    main()
