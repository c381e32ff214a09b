"""The shipped agents, the offline model and the registry, run in process (no Redis)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent import (
    BUILTIN_AGENTS,
    OfflineChatModel,
    RegistryError,
    get_chat_model,
    load_registry,
    naming,
    parallel,
    scheduling,
    tool_approval,
)

REPO = Path(__file__).resolve().parent.parent
BOOK = "Book a call with Alice about the Q3 roadmap"
EMAIL = "Send an email to bob@example.com about the launch"


@tool
def schedule_meeting(topic: str, attendee: str) -> str:
    """Book a meeting or call with an attendee about a topic; a person picks the time slot."""
    return f"{topic} with {attendee}"


@tool
def send_email(to: str, subject: str, body: str) -> str:
    """Send an email to a recipient with a subject and body."""
    return f"sent to {to}"


def attach_saver(graph: Any) -> Any:
    # The same call the worker makes to give a shipped graph its saver.
    return graph.copy(update={"checkpointer": InMemorySaver()})


def offline(module: Any) -> Any:
    """The module's graph on the offline model, whatever OPENAI_API_KEY says, with a saver."""
    return attach_saver(module.build_graph(OfflineChatModel()))


def new_thread() -> RunnableConfig:
    return {"configurable": {"thread_id": uuid.uuid4().hex}}


def user(text: str) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}]}


def pending(graph: Any, config: RunnableConfig) -> list[Any]:
    return list(graph.get_state(config).interrupts)


def last_ai_text(result: dict[str, Any]) -> str:
    message = result["messages"][-1]
    assert isinstance(message, AIMessage)
    return str(message.content)


# The offline model.


def test_offline_model_calls_the_tool_that_fits_with_args_from_the_request() -> None:
    model = OfflineChatModel().bind_tools([send_email, schedule_meeting])

    booked = model.invoke([HumanMessage(BOOK)])
    emailed = model.invoke([HumanMessage(EMAIL)])

    [call] = booked.tool_calls
    assert call["name"] == "schedule_meeting"
    assert call["args"]["attendee"] == "Alice"
    assert call["args"]["topic"] in ("the Q3 roadmap", "Q3 roadmap")
    assert call["id"]
    [call] = emailed.tool_calls
    assert call["name"] == "send_email"
    assert call["args"]["to"] == "bob@example.com"
    assert set(call["args"]) == {"to", "subject", "body"}


def test_offline_model_reads_explicit_arguments() -> None:
    model = OfflineChatModel().bind_tools([send_email])

    message = model.invoke([HumanMessage("send_email to: a@b.io, subject: Hi there, body=See you")])

    assert message.tool_calls[0]["args"] == {
        "to": "a@b.io",
        "subject": "Hi there",
        "body": "See you",
    }


def test_offline_model_answers_in_text_when_no_tool_fits() -> None:
    model = OfflineChatModel().bind_tools([send_email, schedule_meeting])

    message = model.invoke([HumanMessage("What is the capital of France?")])

    assert message.tool_calls == []
    assert "capital of France" in str(message.content)


def test_offline_model_introduces_itself_by_the_system_name() -> None:
    messages = [
        SystemMessage("You are a helpful assistant named Grace Hopper."),
        HumanMessage("hi"),
    ]

    message = OfflineChatModel().invoke(messages)

    assert "I'm Grace Hopper" in str(message.content)


def test_offline_model_restates_tool_results() -> None:
    messages: list[BaseMessage] = [
        HumanMessage(BOOK),
        AIMessage("", tool_calls=[{"name": "schedule_meeting", "args": {}, "id": "c1"}]),
        ToolMessage("Meeting scheduled for Monday: roadmap", tool_call_id="c1"),
    ]

    message = OfflineChatModel().bind_tools([schedule_meeting]).invoke(messages)

    assert message.tool_calls == []
    assert "Meeting scheduled for Monday: roadmap" in str(message.content)


def test_offline_model_is_deterministic() -> None:
    messages = [HumanMessage(BOOK)]

    first = OfflineChatModel().bind_tools([schedule_meeting]).invoke(messages)
    second = OfflineChatModel().bind_tools([schedule_meeting]).invoke(messages)
    other = (
        OfflineChatModel()
        .bind_tools([schedule_meeting])
        .invoke([HumanMessage("Book a call with Bob about hiring")])
    )

    assert first.content == second.content
    assert first.tool_calls == second.tool_calls
    assert first.tool_calls[0]["id"] != other.tool_calls[0]["id"]


def test_offline_model_streams_word_chunks() -> None:
    model = OfflineChatModel()
    messages = [HumanMessage("tell me something about the weather today")]

    chunks = list(model.stream(messages))

    assert len(chunks) > 3
    assert all(isinstance(c, AIMessageChunk) for c in chunks)
    assert "".join(str(c.content) for c in chunks) == model.invoke(messages).content


async def test_offline_model_streams_tool_calls_as_chunks() -> None:
    model = OfflineChatModel().bind_tools([schedule_meeting])
    messages = [HumanMessage(BOOK)]

    chunks = [chunk async for chunk in model.astream(messages)]

    assert sum(1 for c in chunks if c.tool_call_chunks) > 1
    merged = chunks[0]
    for chunk in chunks[1:]:
        merged += chunk
    assert merged.tool_calls == (await model.ainvoke(messages)).tool_calls


@pytest.fixture
def fresh_model_choice() -> Iterator[None]:
    get_chat_model.cache_clear()
    yield
    get_chat_model.cache_clear()


@pytest.mark.usefixtures("fresh_model_choice")
def test_model_is_offline_without_an_api_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    with caplog.at_level(logging.INFO, logger="agent.models"):
        model = get_chat_model()

    assert isinstance(model, OfflineChatModel)
    assert "offline" in caplog.text


@pytest.mark.usefixtures("fresh_model_choice")
def test_model_is_openai_with_an_api_key(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_openai import ChatOpenAI

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("BROKER_MODEL", "my-model")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")

    with caplog.at_level(logging.INFO, logger="agent.models"):
        model = get_chat_model()

    assert isinstance(model, ChatOpenAI)
    assert model.model_name == "my-model"
    assert model.openai_api_base == "http://127.0.0.1:9/v1"
    assert "my-model" in caplog.text


# The shipped graphs.


@pytest.mark.parametrize("module", [naming, scheduling, tool_approval, parallel])
def test_graphs_ship_without_a_checkpointer_and_take_the_workers(module: Any) -> None:
    saver = InMemorySaver()

    copied = module.graph.copy(update={"checkpointer": saver})

    assert module.graph.checkpointer is None
    assert copied.checkpointer is saver


def test_naming_asks_for_approval_then_a_name_and_uses_it() -> None:
    graph, config = offline(naming), new_thread()

    graph.invoke(user("hi"), config)
    [approval] = pending(graph, config)
    graph.invoke(Command(resume=True), config)
    [ask] = pending(graph, config)
    result = graph.invoke(Command(resume="Ada"), config)

    assert approval.value == {"type": "approval", "content": "please approve"}
    assert ask.value == {
        "type": "ask",
        "content": "Before we start, what would you like to call me?",
    }
    assert ask.id != approval.id
    assert pending(graph, config) == []
    assert result["agent_name"] == "Ada"
    assert "Ada" in last_ai_text(result)


async def test_naming_accepts_a_dict_answer_and_skips_asking_when_named() -> None:
    graph = offline(naming)
    asked, named = new_thread(), new_thread()

    await graph.ainvoke(user("hi"), asked)
    await graph.ainvoke(Command(resume={"approved": True}), asked)
    from_dict = await graph.ainvoke(Command(resume={"name": "Linus"}), asked)
    await graph.ainvoke({**user("hi"), "agent_name": "Grace"}, named)
    preset = await graph.ainvoke(Command(resume="yes"), named)

    assert from_dict["agent_name"] == "Linus"
    assert "Linus" in last_ai_text(from_dict)
    assert pending(graph, named) == []
    assert "Grace" in last_ai_text(preset)


@pytest.mark.parametrize("answer", [False, {"approved": False}, "reject", "no"])
def test_naming_stops_when_not_approved(answer: Any) -> None:
    graph, config = offline(naming), new_thread()

    graph.invoke(user("hi"), config)
    result = graph.invoke(Command(resume=answer), config)

    assert pending(graph, config) == []
    assert "not approved" in last_ai_text(result)
    assert "agent_name" not in result


def start_booking(graph: Any, config: RunnableConfig) -> dict[str, Any]:
    graph.invoke(user(BOOK), config)
    [slots] = pending(graph, config)
    value: dict[str, Any] = slots.value
    return value


def test_scheduling_offers_four_future_slots() -> None:
    graph, config = offline(scheduling), new_thread()

    value = start_booking(graph, config)

    assert value["attendee"] == "Alice"
    assert value["topic"] in ("the Q3 roadmap", "Q3 roadmap")
    assert len(value["slots"]) == 4
    times = [datetime.fromisoformat(slot["iso"]) for slot in value["slots"]]
    assert all(t > datetime.now(UTC) for t in times)
    assert times == sorted(set(times))
    assert len({slot["label"] for slot in value["slots"]}) == 4


def test_scheduling_books_the_chosen_slot() -> None:
    graph, config = offline(scheduling), new_thread()
    value = start_booking(graph, config)
    slot = value["slots"][2]

    result = graph.invoke(
        Command(resume={"chosen_time": slot["iso"], "chosen_label": slot["label"]}), config
    )

    sentence = f"Meeting scheduled for {slot['label']}: {value['topic']}"
    tool_results = [m.content for m in result["messages"] if isinstance(m, ToolMessage)]
    assert tool_results == [sentence]
    assert sentence in last_ai_text(result)


@pytest.mark.parametrize(
    ("answer", "sentence"),
    [
        ({"cancelled": True}, "User cancelled. Meeting NOT scheduled: {topic}"),
        ({"something": "else"}, "User did not pick a time. Meeting NOT scheduled: {topic}"),
    ],
)
async def test_scheduling_reports_a_meeting_not_booked(answer: Any, sentence: str) -> None:
    graph, config = offline(scheduling), new_thread()
    await graph.ainvoke(user(BOOK), config)
    [slots] = pending(graph, config)

    result = await graph.ainvoke(Command(resume=answer), config)

    assert sentence.format(topic=slots.value["topic"]) in last_ai_text(result)


async def test_scheduling_streams_model_tokens() -> None:
    graph, config = offline(scheduling), new_thread()

    chunks = [
        chunk
        async for chunk, _ in graph.astream(user(BOOK), config, stream_mode="messages")
        if isinstance(chunk, AIMessageChunk)
    ]

    assert sum(1 for c in chunks if c.tool_call_chunks) > 1


def start_email(graph: Any, config: RunnableConfig) -> dict[str, Any]:
    graph.invoke(user(EMAIL), config)
    [review] = pending(graph, config)
    value: dict[str, Any] = review.value
    return value


def tool_results(result: dict[str, Any]) -> list[str]:
    return [str(m.content) for m in result["messages"] if isinstance(m, ToolMessage)]


def test_tool_approval_asks_for_a_review() -> None:
    graph, config = offline(tool_approval), new_thread()

    value = start_email(graph, config)

    [action] = value["action_requests"]
    assert action["name"] == "send_email"
    assert action["args"]["to"] == "bob@example.com"
    assert value["review_configs"] == [
        {"action_name": "send_email", "allowed_decisions": ["approve", "edit", "reject"]}
    ]


@pytest.fixture
def no_receipts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The graph alone, without a broker to sign receipts: the tool runs with a warning
    (tests/test_receipts.py drives it with real receipts)."""
    monkeypatch.setenv("TOOL_APPROVAL_RECEIPTS", "warn")


def test_tool_approval_refuses_without_a_receipt() -> None:
    graph, config = offline(tool_approval), new_thread()
    start_email(graph, config)

    result = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)

    [output] = tool_results(result)
    assert output.startswith("Email not sent: the broker signs no receipts")


@pytest.mark.usefixtures("no_receipts")
def test_tool_approval_approve_runs_the_tool_as_called() -> None:
    graph, config = offline(tool_approval), new_thread()
    value = start_email(graph, config)
    subject = value["action_requests"][0]["args"]["subject"]

    result = graph.invoke(Command(resume={"decisions": [{"type": "approve"}]}), config)

    sentence = f"Email sent to bob@example.com with subject '{subject}'"
    assert tool_results(result) == [sentence]
    assert sentence in last_ai_text(result)


@pytest.mark.usefixtures("no_receipts")
def test_tool_approval_edit_runs_the_tool_with_the_edited_args() -> None:
    graph, config = offline(tool_approval), new_thread()
    start_email(graph, config)
    edited = {"to": "carol@example.com", "subject": "Launch moved", "body": "Next week."}

    result = graph.invoke(
        Command(
            resume={
                "decisions": [
                    {"type": "edit", "edited_action": {"name": "send_email", "args": edited}}
                ]
            }
        ),
        config,
    )

    [output] = tool_results(result)
    assert "Email sent to carol@example.com with subject 'Launch moved'" in output
    assert "Email sent to bob@example.com" not in output


def test_tool_approval_reject_skips_the_tool_and_tells_the_model() -> None:
    graph, config = offline(tool_approval), new_thread()
    start_email(graph, config)

    result = graph.invoke(
        Command(resume={"decisions": [{"type": "reject", "message": "Not before Friday."}]}),
        config,
    )

    [output] = tool_results(result)
    assert "Email sent" not in output
    assert "Not before Friday." in output
    assert "Not before Friday." in last_ai_text(result)


def test_parallel_interrupts_are_answered_one_at_a_time() -> None:
    graph, config = attach_saver(parallel.graph), new_thread()

    graph.invoke({"messages": []}, config)
    both = {i.value["content"]: i for i in pending(graph, config)}
    budget, launch = both["approve the budget"], both["approve the launch date"]
    graph.invoke(Command(resume={budget.id: True}), config)
    still = pending(graph, config)
    result = graph.invoke(
        Command(resume={launch.id: {"approved": False, "comment": "too early"}}), config
    )

    assert budget.id != launch.id
    assert budget.value["type"] == launch.value["type"] == "approval"
    assert [(i.id, i.value) for i in still] == [(launch.id, launch.value)]
    assert pending(graph, config) == []
    assert result["answers"] == {
        "budget": True,
        "launch_date": {"approved": False, "comment": "too early"},
    }
    assert result["approved"] is False
    summary = last_ai_text(result)
    assert "Budget: approved" in summary
    assert "Launch date: rejected (too early)" in summary


# The registry.


def test_registry_defaults_to_the_built_in_agents() -> None:
    registry = load_registry()

    assert set(registry) == {"naming", "scheduling", "tool_approval", "parallel"}
    assert registry["parallel"].graph is parallel.graph
    assert all(spec.description for spec in registry.values())


def test_repo_langgraph_json_lists_the_built_in_graphs() -> None:
    registry = load_registry(str(REPO / "langgraph.json"))

    assert set(registry) == set(BUILTIN_AGENTS)
    assert registry["naming"].graph is naming.graph
    assert registry["tool_approval"].graph is tool_approval.graph
    assert json.loads((REPO / "langgraph.json").read_text())["dependencies"] == ["."]


GRAPH_FILE = '''
"""Echo: a one-node graph used by the registry tests."""
from typing_extensions import TypedDict
from langgraph.graph import START, StateGraph


class State(TypedDict):
    text: str


def shout(state: State) -> dict:
    return {"text": state["text"].upper()}


builder = StateGraph(State).add_node(shout).add_edge(START, "shout")
graph = builder.compile()


def make_graph():
    return builder.compile()


def needs_config(config):
    return builder.compile()
'''


@pytest.fixture
def graph_dir(tmp_path: Path) -> Path:
    (tmp_path / "graphs").mkdir()
    (tmp_path / "graphs" / "echo.py").write_text(GRAPH_FILE)
    return tmp_path


def write_langgraph_json(folder: Path, graphs: dict[str, Any]) -> str:
    path = folder / "langgraph.json"
    path.write_text(json.dumps({"dependencies": ["."], "graphs": graphs}))
    return str(path)


def test_registry_loads_graphs_from_a_langgraph_json(graph_dir: Path) -> None:
    path = write_langgraph_json(
        graph_dir,
        {
            "compiled": "./graphs/echo.py:graph",
            "builder": "./graphs/echo.py:builder",
            "factory": {"path": "./graphs/echo.py:make_graph", "description": "Made."},
        },
    )

    registry = load_registry(path)

    assert set(registry) == {"compiled", "builder", "factory"}
    for spec in registry.values():
        assert spec.graph.invoke({"text": "hi"}) == {"text": "HI"}
        assert spec.graph.checkpointer is None
    assert registry["compiled"].description == "Echo: a one-node graph used by the registry tests."
    assert registry["factory"].description == "Made."
    assert registry["builder"].source == "./graphs/echo.py:builder"


def test_registry_loads_module_attribute_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = f"echo_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(GRAPH_FILE)
    monkeypatch.syspath_prepend(str(tmp_path))

    registry = load_registry(agents=f"echo={module}:graph, naming = agent.naming:graph")

    assert set(registry) == {"echo", "naming"}
    assert registry["echo"].graph.invoke({"text": "a"}) == {"text": "A"}
    assert registry["naming"].graph is naming.graph


@pytest.mark.parametrize(
    ("agents", "message"),
    [
        ("echo", "must look like id=package.module:attribute"),
        ("x=no_such_module_xyz:graph", "agent 'x': cannot import 'no_such_module_xyz:graph'"),
        ("x=agent.naming:missing", "has no attribute 'missing'"),
        ("x=agent.naming", "must look like package.module:attribute"),
        ("x=agent.scheduling:meeting_slots", "not a LangGraph graph"),
        ("x=agent.scheduling:meeting_outcome", "needs arguments (answer, topic, slots)"),
        ("bad id=agent.naming:graph", "agent id 'bad id'"),
        ("x=agent.naming:graph,x=agent.parallel:graph", "agent 'x' is defined twice"),
    ],
)
def test_registry_names_the_fix_for_bad_entries(agents: str, message: str) -> None:
    with pytest.raises(RegistryError) as caught:
        load_registry(agents=agents)

    assert message in str(caught.value)


def test_registry_names_the_fix_for_a_bad_langgraph_json(graph_dir: Path) -> None:
    missing_file = write_langgraph_json(graph_dir, {"x": "./graphs/nope.py:graph"})
    with pytest.raises(RegistryError, match=r"agent 'x': file './graphs/nope.py' not found"):
        load_registry(missing_file)

    needs_args = write_langgraph_json(graph_dir, {"x": "./graphs/echo.py:needs_config"})
    with pytest.raises(RegistryError, match=r"needs arguments \(config\)"):
        load_registry(needs_args)

    (graph_dir / "langgraph.json").write_text('{"graphs": {}}')
    with pytest.raises(RegistryError, match='has no "graphs"'):
        load_registry(str(graph_dir / "langgraph.json"))

    with pytest.raises(RegistryError, match=r"langgraph\.json not found"):
        load_registry(str(graph_dir / "absent.json"))
