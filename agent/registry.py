"""Which agents the broker runs: the built-ins, a langgraph.json, or ``id=module:attr`` entries."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from langgraph.graph import StateGraph
from langgraph.pregel import Pregel

BUILTIN_AGENTS: dict[str, str] = {
    "naming": "agent.naming:graph",
    "scheduling": "agent.scheduling:graph",
    "tool_approval": "agent.tool_approval:graph",
    "parallel": "agent.parallel:graph",
}
# Ids travel in URLs and Redis keys, so they stay plain.
_AGENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class _Entry(NamedTuple):
    agent_id: str
    target: str
    description: str | None
    base: Path | None  # where relative file paths start
    origin: str  # where the entry was written, for error messages


class RegistryError(ValueError):
    """An agent could not be registered; the message says what to change."""


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """A registered agent: its id, compiled graph (no checkpointer attached), and origin."""

    id: str
    graph: Pregel[Any, Any, Any, Any]
    description: str
    source: str


def load_registry(
    langgraph_json: str | None = None, agents: str | None = None
) -> dict[str, AgentSpec]:
    """Load the agents to serve, keyed by id.

    ``langgraph_json`` is the path of a ``langgraph.json`` whose ``graphs`` map ids to
    ``./file.py:attr`` (relative to the file) or ``package.module:attr``. ``agents`` is a
    comma-separated ``id=package.module:attr`` list. Both may be given; with neither, the
    built-in agents are loaded. The attribute may be a compiled graph, a ``StateGraph``
    (compiled here) or a function of no arguments returning either.
    """
    entries: list[_Entry] = []
    if langgraph_json:
        entries.extend(_langgraph_json_entries(langgraph_json))
    if agents:
        entries.extend(_setting_entries(agents))
    if not langgraph_json and not agents:
        entries = [_Entry(i, t, None, None, "built-in") for i, t in BUILTIN_AGENTS.items()]

    registry: dict[str, AgentSpec] = {}
    origins: dict[str, str] = {}
    for entry in entries:
        if not _AGENT_ID.fullmatch(entry.agent_id):
            raise RegistryError(
                f"agent id {entry.agent_id!r} (in {entry.origin}) is not allowed: use letters, "
                "digits, '_', '-' and '.', starting with a letter or digit, at most 64 long"
            )
        if entry.agent_id in origins:
            first = origins[entry.agent_id]
            where = f"in {first}" if first == entry.origin else f"in {first} and {entry.origin}"
            raise RegistryError(
                f"agent {entry.agent_id!r} is defined twice ({where}): give one of them another id"
            )
        origins[entry.agent_id] = entry.origin
        registry[entry.agent_id] = _load_agent(entry)
    return registry


def _langgraph_json_entries(path: str) -> list[_Entry]:
    file = Path(path).expanduser().resolve()
    try:
        config = json.loads(file.read_text())
    except FileNotFoundError:
        raise RegistryError(
            f"langgraph.json not found at {file}: point BROKER_LANGGRAPH_JSON at an "
            "existing file, or unset it to serve the built-in agents"
        ) from None
    except json.JSONDecodeError as exc:
        raise RegistryError(f"{file} is not valid JSON: {exc}") from None
    graphs = config.get("graphs") if isinstance(config, dict) else None
    if not isinstance(graphs, dict) or not graphs:
        raise RegistryError(
            f'{file} has no "graphs": add e.g. {{"graphs": {{"my_agent": "./agent.py:graph"}}}}'
        )
    # As with LangGraph's own tooling, local "dependencies" become importable.
    for dep in config.get("dependencies") or []:
        if isinstance(dep, str) and (dep.startswith(".") or dep.startswith("/")):
            _add_to_path(file.parent / dep)

    entries: list[_Entry] = []
    for agent_id, value in graphs.items():
        description = None
        if isinstance(value, dict):
            description = value.get("description")
            value = value.get("path")
        if not isinstance(value, str):
            raise RegistryError(
                f"agent {agent_id!r} in {file}: expected a string such as "
                f'"./path/to/file.py:graph" or {{"path": ...}}, got {value!r}'
            )
        entries.append(_Entry(agent_id, value, description, file.parent, str(file)))
    return entries


def _setting_entries(agents: str) -> list[_Entry]:
    entries: list[_Entry] = []
    for item in agents.split(","):
        if not item.strip():
            continue
        agent_id, sep, target = item.partition("=")
        if not sep or not agent_id.strip() or not target.strip():
            raise RegistryError(
                f"agent entry {item.strip()!r} in BROKER_AGENTS must look like "
                "id=package.module:attribute (entries separated by commas)"
            )
        entries.append(_Entry(agent_id.strip(), target.strip(), None, None, "BROKER_AGENTS"))
    return entries


def _load_agent(entry: _Entry) -> AgentSpec:
    agent_id, target = entry.agent_id, entry.target
    where, sep, attr = target.rpartition(":")
    if not sep or not where or not attr:
        raise RegistryError(
            f"agent {agent_id!r}: {target!r} must look like package.module:attribute "
            "or ./path/to/file.py:attribute"
        )
    try:
        module = _import(where, entry.base)
    except RegistryError as exc:
        raise RegistryError(f"agent {agent_id!r}: {exc}") from None
    except Exception as exc:
        raise RegistryError(
            f"agent {agent_id!r}: cannot import {target!r} — {type(exc).__name__}: {exc}. "
            "Check the module path and that its dependencies are installed."
        ) from exc
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise RegistryError(
                f"agent {agent_id!r}: {where!r} has no attribute {attr!r}; export the graph "
                f"as a module-level name and point at it ({where}:<name>)"
            )
        obj = getattr(obj, part)
    graph = _as_graph(agent_id, target, obj)
    description = entry.description
    if not isinstance(description, str):
        description = _first_line(module.__doc__)
    return AgentSpec(id=agent_id, graph=graph, description=description, source=target)


def _import(where: str, base: Path | None) -> ModuleType:
    if where.endswith(".py") or "/" in where or "\\" in where:
        file = ((base or Path.cwd()) / where).resolve()
        if not file.is_file():
            raise RegistryError(f"file {where!r} not found (looked at {file})")
        return _import_file(file)
    return importlib.import_module(where)


def _import_file(file: Path) -> ModuleType:
    # A file inside an importable package is imported by its dotted name, so it is the
    # same module object (and the same graph) as a plain import of it.
    dotted = _dotted_name(file)
    if dotted is not None:
        return importlib.import_module(dotted)
    name = f"_broker_graph_{hashlib.sha1(str(file).encode()).hexdigest()[:12]}"
    if (loaded := sys.modules.get(name)) is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:
        raise RegistryError(f"cannot load {file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as a normal import would be (dataclasses need it).
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def _dotted_name(file: Path) -> str | None:
    parts = [file.stem]
    folder = file.parent
    while (folder / "__init__.py").is_file():
        parts.insert(0, folder.name)
        folder = folder.parent
    if len(parts) == 1:
        return None
    roots = {Path(p or ".").resolve() for p in sys.path}
    return ".".join(parts) if folder in roots else None


def _add_to_path(folder: Path) -> None:
    resolved = str(folder.resolve())
    if folder.is_dir() and resolved not in sys.path:
        sys.path.append(resolved)


def _as_graph(agent_id: str, target: str, obj: Any) -> Pregel[Any, Any, Any, Any]:
    if isinstance(obj, StateGraph):
        return obj.compile()
    if isinstance(obj, Pregel):
        return obj
    if callable(obj) and not isinstance(obj, type):
        required = _required_params(obj)
        if required:
            raise RegistryError(
                f"agent {agent_id!r}: {target!r} is a function that needs arguments "
                f"({', '.join(p.name for p in required)}); point at a graph or at a "
                "function of no arguments that returns one"
            )
        try:
            made = obj()
        except Exception as exc:
            raise RegistryError(
                f"agent {agent_id!r}: calling {target!r} to build the graph failed — "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        if isinstance(made, StateGraph):
            return made.compile()
        if isinstance(made, Pregel):
            return made
        obj = made
    raise RegistryError(
        f"agent {agent_id!r}: {target!r} is a {type(obj).__name__}, not a LangGraph graph; "
        "point at a compiled graph (builder.compile()), a StateGraph, or a function of no "
        "arguments returning one"
    )


def _required_params(func: Any) -> list[inspect.Parameter]:
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # no signature to read: just try calling it
        return []
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    return [p for p in params if p.default is inspect.Parameter.empty and p.kind not in variadic]


def _first_line(doc: str | None) -> str:
    return doc.strip().splitlines()[0].strip() if doc and doc.strip() else ""
