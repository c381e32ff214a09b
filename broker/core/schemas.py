"""Checking an answer before anything is queued.

Two contracts are checked:
- a JSON Schema the interrupt declares, either LangGraph's
  ``interrupt(value, response_schema=...)`` or a ``responseSchema`` key in the value;
- LangChain's ``HumanInTheLoopMiddleware`` contract, for values carrying
  ``action_requests`` and ``review_configs``: one decision per action, each of a type
  the action's review config allows, and an edit carries the edited action.

A failure raises ``InvalidAnswer`` naming the failing path as a JSON pointer into the
answer (``/decisions/0/type``).
"""

from __future__ import annotations

import json
import logging
from functools import lru_cache
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, best_match
from jsonschema.validators import validator_for

from broker.core import errors
from broker.core.shapes import allowed_decisions, is_hitl_request

log = logging.getLogger("broker.core.schemas")


def declared_schema(value: Any, response_schema: Any = None) -> dict[str, Any] | None:
    """The JSON Schema an interrupt declares for its answer, if any."""
    if isinstance(response_schema, dict) and response_schema:
        return response_schema
    if isinstance(value, dict) and isinstance(value.get("responseSchema"), dict):
        schema: dict[str, Any] = value["responseSchema"]
        return schema
    return None


@lru_cache(maxsize=512)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    cls = validator_for(schema, default=Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def pointer(path: Any) -> str:
    return "".join(f"/{p}" for p in path) or "/"


def _invalid(path: list[Any] | str, why: str) -> errors.InvalidAnswer:
    where = path if isinstance(path, str) else pointer(path)
    return errors.InvalidAnswer(f"answer at {where}: {why}", path=where)


def check_answer(value: Any, response_schema: Any, answer: Any) -> None:
    """Raises ``InvalidAnswer`` unless ``answer`` meets the interrupt's contracts."""
    schema = declared_schema(value, response_schema)
    if schema is not None:
        try:
            validator = _validator(json.dumps(schema, sort_keys=True))
        except SchemaError:
            # the agent declared a broken schema; refusing every answer would strand the run
            log.warning("ignoring an interrupt's invalid response schema")
        else:
            error = best_match(validator.iter_errors(answer))
            if error is not None:
                raise _invalid(list(error.absolute_path), error.message)
    if is_hitl_request(value):
        check_decisions(value, answer)


def check_decisions(value: dict[str, Any], answer: Any) -> None:
    actions = value["action_requests"]
    if not isinstance(answer, dict) or not isinstance(answer.get("decisions"), list):
        raise _invalid([], 'expected {"decisions": [...]}, one decision per action')
    decisions = answer["decisions"]
    if len(decisions) != len(actions):
        raise _invalid(
            ["decisions"],
            f"{len(decisions)} decisions for {len(actions)} actions; send one per action",
        )
    for n, (decision, action) in enumerate(zip(decisions, actions, strict=True)):
        at = ["decisions", n]
        if not isinstance(decision, dict):
            raise _invalid(at, "a decision is an object with a type")
        action = action if isinstance(action, dict) else {}
        allowed = allowed_decisions(value, action)
        kind = decision.get("type")
        if kind not in allowed:
            raise _invalid(
                [*at, "type"],
                f"{kind!r} is not allowed for {action.get('name')!r}; allowed: {allowed}",
            )
        if kind == "edit":
            edited = decision.get("edited_action")
            if not isinstance(edited, dict):
                raise _invalid([*at, "edited_action"], "an edit carries the edited action")
            if not isinstance(edited.get("name"), str) or not edited["name"]:
                raise _invalid([*at, "edited_action", "name"], "the edited action needs a name")
            if not isinstance(edited.get("args"), dict):
                raise _invalid([*at, "edited_action", "args"], "args must be an object")
        elif kind in ("reject", "respond"):
            message = decision.get("message")
            if message is not None and not isinstance(message, str):
                raise _invalid([*at, "message"], "message must be a string")
            if kind == "respond" and not message:
                raise _invalid([*at, "message"], "a respond decision needs a message")
