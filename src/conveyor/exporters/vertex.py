"""The line as a Vertex AI pipeline: KFP v2 IR YAML compiled by ``kfp`` (``conveyor[vertex]``).

One container task per conveyor step, ordered with ``.after()`` (the steps exchange data through
the shared stores, not through KFP artifacts); the gate's Boolean output decides, with
``dsl.If``/``dsl.Else``, whether ``register`` or ``register_rejected`` runs. KFP's own cache is
off: conveyor's cache decides what re-runs.
"""

from __future__ import annotations

import inspect
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kfp import compiler, dsl

from conveyor.exporters._line import REGISTER_STEP, REJECTED_STEP, Line, LineStep, Slots, parameters
from conveyor.exporters._line import required_env as _required_env

if TYPE_CHECKING:
    from collections.abc import Callable

GATE_OUTPUT = "gate_passed"


def render(line: Line) -> tuple[str, dict[str, str | int | None]]:
    """The compiled pipeline YAML and its parameters (name -> default).

    Raises:
        ExportError: the project's stores are local (Vertex steps could not share them).
    """
    env = _required_env(line, "vertex")
    with tempfile.TemporaryDirectory(prefix="conveyor-kfp-") as tmp:
        path = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(pipeline_func=pipeline(line, env), package_path=str(path))
        return path.read_text(encoding="utf-8"), parameters(line)


def pipeline(line: Line, env: dict[str, str]) -> Any:
    """The ``@dsl.pipeline`` of ``line``, its parameters those of :func:`parameters`."""
    params = parameters(line)
    components = {s.name: _component(line, s) for s in line.steps}

    def body(*args: Any) -> None:
        inputs: dict[str, Any] = {"run_key": dsl.PIPELINE_JOB_ID_PLACEHOLDER}
        inputs.update(zip(params, args, strict=True))
        tasks: dict[str, Any] = {}

        def add(step: LineStep, title: str | None = None) -> None:
            """One task running ``step``'s command, named ``title`` (default: the step's)."""
            title = title or step.name
            component = (
                components[step.name] if title == step.name else _component(line, step, name=title)
            )
            task = component(**inputs)
            task.set_display_name(title)
            task.set_caching_options(False)
            for name, value in env.items():
                task.set_env_variable(name, value)
            task.after(*(tasks[u] for u in step.upstream))
            tasks[title] = task

        for step in line.steps:
            if not step.gated:
                add(step)
        if not line.gated:
            return
        passed = tasks[next(s.name for s in line.steps if s.gate)].outputs[GATE_OUTPUT]
        with dsl.If(passed == True, name="gate-passed"):  # noqa: E712 - a KFP condition
            for step in line.steps:
                if step.gated:
                    add(step)
        with dsl.Else(name="gate-failed"):
            add(line.step(REGISTER_STEP), REJECTED_STEP)

    _sign(body, line.name.lower(), [(n, type(v), v) for n, v in params.items()])
    return dsl.pipeline(name=line.name.lower(), description=_describe(line))(body)


def _component(line: Line, step: LineStep, *, name: str | None = None) -> Any:
    """A container component running ``step``'s command (``name``: the component's name)."""
    inputs: list[tuple[str, Any, Any]] = [("run_key", str, inspect.Parameter.empty)]
    if line.data_uri is not None:
        inputs.append(("data_uri", str, inspect.Parameter.empty))
    if line.seed is not None:
        inputs.append(("seed", int, inspect.Parameter.empty))
    inputs.append(("summary", dsl.OutputPath(str), inspect.Parameter.empty))
    if step.gate:
        inputs.append((GATE_OUTPUT, dsl.OutputPath(bool), inspect.Parameter.empty))
    names = [n for n, _, _ in inputs]
    title = name or step.name

    def body(*args: Any) -> Any:
        given = dict(zip(names, args, strict=True))
        argv = line.command(
            title,
            Slots[Any](
                run_key=given["run_key"],
                assign=_concat,
                data_uri=given.get("data_uri"),
                seed=given.get("seed"),
                summary=given["summary"],
                gate_passed=given.get(GATE_OUTPUT),
            ),
        )
        return dsl.ContainerSpec(image=line.image, command=argv[:1], args=argv[1:])

    _sign(body, title, inputs)
    body.__doc__ = f"conveyor step {title} of {line.pipeline} ({line.project})."
    return dsl.container_component(body)


def _sign(func: Callable[..., Any], name: str, params: list[tuple[str, Any, Any]]) -> None:
    """Give a generic function the name and signature KFP reads to build a component."""
    func.__name__ = func.__qualname__ = name
    func.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=t, default=d)
            for n, t, d in params
        ]
    )


def _concat(prefix: str, value: Any) -> Any:
    return dsl.ConcatPlaceholder([prefix, value])


def _describe(line: Line) -> str:
    return (
        f"conveyor line {line.pipeline} of project {line.project}: each task runs "
        f"`conveyor run {line.pipeline} --step NAME` in {line.image}"
    )
