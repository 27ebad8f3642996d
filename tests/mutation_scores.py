"""Per-module mutation scores of the last ``mutmut run`` (``make mutate`` prints them).

mutmut 3 prints one total; this reads its per-file results (``mutants/<path>.meta``) and prints,
for each mutated module, how many mutants were killed, survived, timed out or had no test, and
the score: (killed + timeout) / (mutants - skipped), as mutmut's own badge counts it.

    .venv/bin/python tests/mutation_scores.py                 # the table
    .venv/bin/python tests/mutation_scores.py --survivors     # and every survivor, by module
    .venv/bin/python tests/mutation_scores.py --fail-under 90 # exit 1 when a module is below

A survivor's diff: ``.venv/bin/mutmut show NAME``. Not a test module (no ``test_`` prefix).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# mutmut's exit-code classes (mutmut.stats.status_by_exit_code), grouped as the table shows them
KILLED = {1, 3}
SURVIVED = {0}
TIMEOUT = {24, 36, 152, 255, -24}
NO_TESTS = {5, 33}
SKIPPED = {34}
TYPE_CHECK = {37}


@dataclass
class Score:
    module: str
    killed: int = 0
    survived: int = 0
    timeout: int = 0
    no_tests: int = 0
    skipped: int = 0
    other: int = 0  # suspicious, segfault, interrupted, not checked
    survivors: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return (
            self.killed + self.survived + self.timeout + self.no_tests + self.skipped + self.other
        )

    @property
    def score(self) -> float:
        tested = self.total - self.skipped
        return 100.0 * (self.killed + self.timeout) / tested if tested else 100.0


def mutated_paths(root: Path) -> list[str]:
    """The ``only_mutate`` list of ``[tool.mutmut]`` in pyproject.toml."""
    config = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["mutmut"]
    return list(config["only_mutate"])


def score_of(root: Path, path: str) -> Score | None:
    """The results recorded for ``path`` (None before mutmut has run on it)."""
    meta = root / "mutants" / f"{path}.meta"
    if not meta.exists():
        return None
    codes: dict[str, int | None] = json.loads(meta.read_text())["exit_code_by_key"]
    score = Score(path.removeprefix("src/"))
    for name, code in sorted(codes.items()):
        if code in KILLED or code in TYPE_CHECK:
            score.killed += 1
        elif code in SURVIVED:
            score.survived += 1
            score.survivors.append(name)
        elif code in TIMEOUT:
            score.timeout += 1
        elif code in NO_TESTS:
            score.no_tests += 1
            score.survivors.append(f"{name} (no test)")
        elif code in SKIPPED:
            score.skipped += 1
        else:
            score.other += 1
            score.survivors.append(f"{name} (exit code {code})")
    return score


def table(scores: list[Score]) -> str:
    head = f"{'module':<40} {'mutants':>7} {'killed':>6} {'survived':>8} {'timeout':>7} "
    head += f"{'no test':>7} {'other':>5} {'score':>7}"
    lines = [head, "-" * len(head)]
    for s in [*scores, _sum(scores)]:
        if s.module == "total":
            lines.append("-" * len(head))
        lines.append(
            f"{s.module:<40} {s.total:>7} {s.killed:>6} {s.survived:>8} {s.timeout:>7} "
            f"{s.no_tests:>7} {s.other:>5} {s.score:>6.1f}%"
        )
    return "\n".join(lines)


def _sum(scores: list[Score]) -> Score:
    total = Score("total")
    for s in scores:
        total.killed += s.killed
        total.survived += s.survived
        total.timeout += s.timeout
        total.no_tests += s.no_tests
        total.skipped += s.skipped
        total.other += s.other
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--survivors", action="store_true", help="list each module's survivors")
    parser.add_argument(
        "--fail-under", type=float, default=None, help="exit 1 if a module scores below this %%"
    )
    parser.add_argument("--root", type=Path, default=ROOT, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    scores: list[Score] = []
    for path in mutated_paths(args.root):
        score = score_of(args.root, path)
        if score is None:
            print(f"{path}: no results (run `make mutate` first)", file=sys.stderr)
            continue
        scores.append(score)
    if not scores:
        return 1
    print(table(scores))
    if args.survivors:
        for s in scores:
            if s.survivors:
                print(f"\n{s.module}:")
                print("\n".join(f"  {name}" for name in s.survivors))
    if args.fail_under is not None:
        low = [s.module for s in scores if s.score < args.fail_under]
        if low:
            print(f"\nbelow {args.fail_under:g}%: {', '.join(low)}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
