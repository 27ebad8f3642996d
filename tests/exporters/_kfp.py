"""Reading a compiled KFP pipeline (IR YAML) the way a KFP backend does: its tasks with their
effective dependencies and branch conditions, and each task's container command resolved."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

PLACEHOLDER = re.compile(r"\{\{\$\.(inputs|outputs)\.parameters\['([^']+)'\](\.output_file)?\}\}")
CONDITION = re.compile(r"^(!\()?inputs\.parameter_values\['([^']+)'\] == (true|false)\)?$")


@dataclass
class Task:
    """One container task of the pipeline, wherever it sits in the nested DAGs."""

    key: str
    name: str  # taskInfo.name: the display name, the conveyor step's
    component: str
    inputs: dict[str, Any]
    after: set[str] = field(default_factory=set)  # display names of the tasks it waits for
    # each enclosing branch: its condition, and the (task key, output) its channels read
    conditions: list[tuple[str, dict[str, tuple[str, str]]]] = field(default_factory=list)


def tasks(spec: dict[str, Any]) -> dict[str, Task]:
    """Every container task by display name, with what it waits for (its own dependentTasks
    and those of every group around it) and the trigger conditions of those groups."""
    found: dict[str, Task] = {}
    _walk(spec, spec["root"]["dag"], set(), [], {}, found)
    return found


def _walk(
    spec: dict[str, Any],
    dag: dict[str, Any],
    after: set[str],
    conditions: list[tuple[str, dict[str, tuple[str, str]]]],
    channels: dict[str, tuple[str, str]],
    found: dict[str, Task],
) -> None:
    names = {key: t["taskInfo"]["name"] for key, t in dag["tasks"].items()}
    for key, task in dag["tasks"].items():
        waits = after | {names[d] for d in task.get("dependentTasks", [])}
        inner = _channels(task, channels)
        more = list(conditions)
        if "triggerPolicy" in task:
            more.append((task["triggerPolicy"]["condition"], inner))
        component = spec["components"][task["componentRef"]["name"]]
        if "dag" in component:
            _walk(spec, component["dag"], waits, more, inner, found)
        else:
            found[names[key]] = Task(
                key, names[key], task["componentRef"]["name"], task["inputs"], waits, more
            )


def _channels(
    task: dict[str, Any], outer: dict[str, tuple[str, str]]
) -> dict[str, tuple[str, str]]:
    """The task outputs each of ``task``'s input parameters carries, through nested groups."""
    found: dict[str, tuple[str, str]] = {}
    for name, given in task.get("inputs", {}).get("parameters", {}).items():
        if "taskOutputParameter" in given:
            source = given["taskOutputParameter"]
            found[name] = (source["producerTask"], source["outputParameterKey"])
        elif given.get("componentInputParameter") in outer:
            found[name] = outer[given["componentInputParameter"]]
    return found


def dag(spec: dict[str, Any]) -> dict[str, set[str]]:
    """Task display name -> the display names of the tasks it waits for."""
    return {name: task.after for name, task in tasks(spec).items()}


def container(spec: dict[str, Any], task: Task) -> dict[str, Any]:
    """The executor's container (image, command, args, env) of ``task``."""
    label = spec["components"][task.component]["executorLabel"]
    found: dict[str, Any] = spec["deploymentSpec"]["executors"][label]["container"]
    return found


def argv(
    spec: dict[str, Any],
    task: Task,
    *,
    parameters: dict[str, Any],
    job_id: str,
    output_file: Any,
) -> list[str]:
    """``task``'s command + args with every placeholder resolved, as the KFP launcher does:
    input parameters from the pipeline's parameters or a runtime constant, output parameter
    placeholders as the files ``output_file(task, name)`` returns, Concat joined."""

    def value(kind: str, name: str, is_file: str | None) -> str:
        if kind == "outputs":
            return str(output_file(task, name))
        given = task.inputs["parameters"][name]
        if "runtimeValue" in given:
            return str(given["runtimeValue"]["constant"]).replace("{{$.pipeline_job_uuid}}", job_id)
        return str(parameters[given["componentInputParameter"].removeprefix("pipelinechannel--")])

    def resolve(arg: str) -> str:
        if arg.startswith('{"Concat"'):
            return "".join(resolve(part) for part in json.loads(arg)["Concat"])
        return PLACEHOLDER.sub(lambda m: value(m[1], m[2], m[3]), arg)

    box = container(spec, task)
    return [resolve(a) for a in [*box["command"], *box.get("args", [])]]


def triggered(task: Task, outputs: dict[tuple[str, str], str]) -> bool:
    """Whether every branch condition around ``task`` holds, given the tasks' output parameter
    values (``(task key, output) -> text``)."""
    for condition, channels in task.conditions:
        match = CONDITION.match(condition)
        assert match, f"condition this driver cannot read: {condition}"
        negate, channel, literal = match.groups()
        value = json.loads(outputs[channels[channel]])
        holds = value == (literal == "true")
        if holds == bool(negate):
            return False
    return True
