"""A pipeline: steps wired into a DAG by matching output names to input names."""

from __future__ import annotations

import graphlib
from typing import TYPE_CHECKING

from conveyor.errors import (
    CycleError,
    DuplicateOutputError,
    MissingInputError,
    PipelineDefinitionError,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from conveyor.pipeline.step import Step


class Pipeline:
    """A validated DAG of steps, in a deterministic topological order.

    Args:
        steps: the steps; each output name may be produced by one step only.
        name: the pipeline's name, recorded with every run.
        inputs: dataset names supplied from outside when the pipeline runs.

    Raises:
        PipelineDefinitionError: duplicate step names (``DuplicateOutputError``,
            ``MissingInputError`` and ``CycleError`` for the other definition mistakes).
    """

    def __init__(
        self, steps: Iterable[Step], *, name: str = "pipeline", inputs: Iterable[str] = ()
    ) -> None:
        self.name = name
        self.inputs = frozenset(inputs)
        given = list(steps)
        self._by_name: dict[str, Step] = {}
        for s in given:
            if s.name in self._by_name:
                raise PipelineDefinitionError(f"pipeline {name!r}: two steps are named {s.name!r}")
            self._by_name[s.name] = s
        self.producers: dict[str, str] = {}
        for s in given:
            for out in s.outputs:
                if out in self.producers:
                    raise DuplicateOutputError(
                        f"pipeline {name!r}: output {out!r} is produced by both "
                        f"{self.producers[out]!r} and {s.name!r}"
                    )
                if out in self.inputs:
                    raise DuplicateOutputError(
                        f"pipeline {name!r}: {out!r} is both a pipeline input and an output "
                        f"of {s.name!r}"
                    )
                self.producers[out] = s.name
        self._check_inputs(given)
        self.steps: tuple[Step, ...] = tuple(self._by_name[n] for n in self._toposort(given))

    def _check_inputs(self, steps: list[Step]) -> None:
        for s in steps:
            for arg, dataset in s.inputs.items():
                if dataset not in self.producers and dataset not in self.inputs:
                    available = sorted(set(self.producers) | self.inputs)
                    raise MissingInputError(
                        f"pipeline {self.name!r}: step {s.name!r} needs input {dataset!r} "
                        f"(argument {arg!r}) but no step produces it and it is not a pipeline "
                        f"input; available: {available or 'none'}"
                    )

    def _toposort(self, steps: list[Step]) -> list[str]:
        sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
        for s in steps:  # definition order breaks ties, so the order is stable
            sorter.add(s.name, *self.upstream(s.name))
        try:
            sorter.prepare()
        except graphlib.CycleError as exc:
            cycle = " -> ".join(exc.args[1])
            raise CycleError(f"pipeline {self.name!r} has a cycle: {cycle}") from None
        order: list[str] = []
        position = {s.name: i for i, s in enumerate(steps)}
        while sorter.is_active():
            ready = sorted(sorter.get_ready(), key=position.__getitem__)
            order.extend(ready)
            sorter.done(*ready)
        return order

    def upstream(self, step_name: str) -> set[str]:
        """Names of the steps whose outputs ``step_name`` reads."""
        s = self._by_name[step_name]
        return {self.producers[d] for d in s.inputs.values() if d in self.producers}

    def downstream(self, step_name: str) -> set[str]:
        """Names of every step that depends, directly or not, on ``step_name``."""
        found: set[str] = set()
        frontier = [step_name]
        while frontier:
            current = frontier.pop()
            for s in self.steps:
                if s.name not in found and current in self.upstream(s.name):
                    found.add(s.name)
                    frontier.append(s.name)
        return found

    def __getitem__(self, step_name: str) -> Step:
        return self._by_name[step_name]

    def __iter__(self) -> Iterator[Step]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __repr__(self) -> str:
        return f"Pipeline({self.name!r}, {len(self.steps)} steps)"


def pipeline(*steps: Step, name: str = "pipeline", inputs: Iterable[str] = ()) -> Pipeline:
    """Build a :class:`Pipeline` from steps given as arguments."""
    return Pipeline(steps, name=name, inputs=inputs)
