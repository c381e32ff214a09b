"""The offline model's reasoning: pick a tool and fill its arguments from the request text.

Everything here is a pure function of the conversation and the bound tools' JSON schemas,
so the same input always gives the same reply.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage

_STOPWORDS = frozenset(
    "a about after all an and any are as at be before by can could do for from get give "
    "has have he her him his how i if in into is it its let me my no not of on or our "
    "please re regarding she so some that the their them then there these they this to "
    "up us was we what when where which who will with would you your".split()
)
_PERSON_ARGS = frozenset(
    "to recipient recipients attendee attendees person people participant participants "
    "invitee invitees guest guests who contact with assignee owner user email".split()
)
_TOPIC_ARGS = frozenset("topic subject title about regarding agenda summary reason query".split())
_BODY_ARGS = frozenset("body message content text note notes details description prompt".split())
_PERSON_CUES = ("with", "to")
_TOPIC_CUES = ("about", "regarding", "concerning", "re")
_FALLBACK_TOPIC_CUES = ("on",)
# Words that end a person phrase such as "with Alice about ..." or "to Bob on Friday".
_PERSON_STOPS = (*_TOPIC_CUES, "on", "at", "for", "to", "with", "and", "tomorrow", "today")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_NAMED = re.compile(r"\bnamed\s+[\"']?(.+?)[\"']?\s*(?:[.!?;,\n]|$)", re.IGNORECASE)
# A clear match needs at least this score: one tool-name word, or two description words.
_MIN_SCORE = 2


def reply(
    messages: list[BaseMessage], tools: list[dict[str, Any]], tool_choice: Any = None
) -> AIMessage:
    """The offline model's answer to a conversation."""
    if messages and isinstance(messages[-1], ToolMessage):
        return AIMessage(content=_restate_tool_results(messages))
    human = messages[-1] if messages and isinstance(messages[-1], HumanMessage) else None
    text = _text(human) if human is not None else ""
    if human is not None and tools and tool_choice != "none":
        chosen = _choose_tool(text, tools, tool_choice)
        if chosen is not None:
            args = fill_args(text, chosen.get("parameters") or {})
            call_id = _call_id(messages, chosen["name"], args)
            return AIMessage(
                content="",
                tool_calls=[{"name": chosen["name"], "args": args, "id": call_id}],
            )
    return AIMessage(content=_plain_reply(messages, text, tools))


def _text(message: BaseMessage) -> str:
    return str(message.text).strip()


def _restate_tool_results(messages: list[BaseMessage]) -> str:
    results: list[str] = []
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            break
        results.append(_text(message))
    return "\n".join(reversed(results))


def _plain_reply(messages: list[BaseMessage], text: str, tools: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    name = assistant_name(messages)
    if name:
        parts.append(f"Hello, I'm {name}, a helpful assistant.")
    if text:
        parts.append(f'You said: "{text}".')
    else:
        parts.append("How can I help?")
    if tools:
        parts.append("I can help with: " + ", ".join(t["name"] for t in tools) + ".")
    return " ".join(parts)


def assistant_name(messages: list[BaseMessage]) -> str | None:
    """The name a system message gives the assistant ("... named Ada."), if any."""
    for message in messages:
        if isinstance(message, SystemMessage) and (match := _NAMED.search(_text(message))):
            return match.group(1).strip()
    return None


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s", "e"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def _words(text: str) -> set[str]:
    split = re.sub(r"([a-z])([A-Z])", r"\1 \2", text).lower()
    return {_stem(w) for w in re.findall(r"[a-z0-9]+", split) if w not in _STOPWORDS}


def _score(request: set[str], tool: dict[str, Any]) -> int:
    name_words = _words(tool["name"].replace("_", " ").replace("-", " "))
    other_words = _words(tool.get("description") or "")
    for arg in (tool.get("parameters") or {}).get("properties", {}):
        other_words |= _words(arg)
    return sum(2 if w in name_words else 1 if w in other_words else 0 for w in request)


def _choose_tool(text: str, tools: list[dict[str, Any]], tool_choice: Any) -> dict[str, Any] | None:
    forced = _forced_name(tool_choice)
    if forced is not None:
        return next((t for t in tools if t["name"] == forced), None)
    request = _words(text)
    ranked = sorted(((_score(request, t), i) for i, t in enumerate(tools)), key=lambda s: -s[0])
    best_score, best = ranked[0]
    if tool_choice in ("any", "required", True):
        return tools[best]
    runner_up = ranked[1][0] if len(ranked) > 1 else 0
    # A tie means the request does not say which tool it wants: answer in text instead.
    if best_score >= _MIN_SCORE and best_score > runner_up:
        return tools[best]
    return None


def _forced_name(tool_choice: Any) -> str | None:
    if isinstance(tool_choice, dict):
        name = tool_choice.get("name") or (tool_choice.get("function") or {}).get("name")
        return name if isinstance(name, str) else None
    if isinstance(tool_choice, str) and tool_choice not in ("auto", "any", "required", "none"):
        return tool_choice
    return None


def fill_args(text: str, schema: dict[str, Any]) -> dict[str, Any]:
    """Arguments for a tool's JSON schema, read from the request text.

    Each argument takes, in order: an explicit ``name: value`` or ``name=value``; a cue
    phrase (a person after "with"/"to", a topic after "about"/"regarding"/"on"); then,
    only if required, a fallback for its type.
    """
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    args: dict[str, Any] = {}
    for name, spec in properties.items():
        raw = _explicit(text, name) or _cued(text, name)
        if raw is None and name not in required:
            continue
        args[name] = _coerce(raw, spec or {}, text)
    return args


def _explicit(text: str, name: str) -> str | None:
    pattern = rf"\b{re.escape(name)}\s*[:=]\s*(\"[^\"]*\"|'[^']*'|[^,;\n]+)"
    if match := re.search(pattern, text, re.IGNORECASE):
        return match.group(1).strip().strip("\"'").rstrip(".!?").strip() or None
    return None


def _cued(text: str, name: str) -> str | None:
    key = name.lower()
    if key in _PERSON_ARGS:
        return _phrase_after(text, _PERSON_CUES, _PERSON_STOPS, person=True) or _first_email(text)
    if key in _TOPIC_ARGS:
        return _phrase_after(text, _TOPIC_CUES, ()) or _phrase_after(text, _FALLBACK_TOPIC_CUES, ())
    if key in _BODY_ARGS:
        return text or None
    return None


def _phrase_after(
    text: str, cues: tuple[str, ...], stops: tuple[str, ...], *, person: bool = False
) -> str | None:
    """The words after a cue, up to a stop word or the end of the sentence.

    The earliest cue wins, except that for a person a phrase that looks like one (an
    address or a capitalised name) beats an earlier one: "I want to book a call with
    Alice" names Alice, not "book a call".
    """
    stop = rf"\s+(?:{'|'.join(stops)})\b|" if stops else ""
    pattern = rf"\b(?:{'|'.join(cues)})\s+(.+?)(?={stop}[,;:!?.](?:\s|$)|\n|$)"
    phrases = [m.group(1).strip() for m in re.finditer(pattern, text, re.IGNORECASE)]
    phrases = [p for p in phrases if p]
    if person:
        named = [p for p in phrases if _EMAIL.search(p) or p[0].isupper()]
        phrases = named or phrases
    return phrases[0] if phrases else None


def _first_email(text: str) -> str | None:
    match = _EMAIL.search(text)
    return match.group(0) if match else None


def _coerce(raw: str | None, spec: dict[str, Any], text: str) -> Any:
    kind = spec.get("type")
    if spec.get("enum"):
        return raw if raw in spec["enum"] else spec["enum"][0]
    if kind in ("integer", "number"):
        numbers = re.findall(r"-?\d+(?:\.\d+)?", raw or text)
        value = float(numbers[0]) if numbers else 0
        return int(value) if kind == "integer" else value
    if kind == "boolean":
        return (raw or "").strip().lower() in ("true", "yes", "y", "1", "on")
    if kind == "array":
        return [part.strip() for part in raw.split(",") if part.strip()] if raw else []
    if kind == "object":
        return {}
    return raw if raw is not None else text


def _call_id(messages: list[BaseMessage], name: str, args: dict[str, Any]) -> str:
    # Derived from the conversation so that a replayed run asks for the same call.
    seen = [[m.type, _text(m)] for m in messages]
    digest = hashlib.sha256(json.dumps([seen, name, args], sort_keys=True).encode()).hexdigest()
    return f"call_{digest[:24]}"
