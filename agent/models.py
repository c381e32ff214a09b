"""The chat model the agents use: OpenAI when configured, otherwise a deterministic offline one."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from functools import lru_cache
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from agent import _offline_rules

logger = logging.getLogger(__name__)

DEFAULT_OPENAI_MODEL = "gpt-4o-mini"


@lru_cache(maxsize=1)
def get_chat_model() -> BaseChatModel:
    """The model every built-in agent uses, chosen from the environment once per process.

    With ``OPENAI_API_KEY`` set: ``ChatOpenAI`` with the model in ``BROKER_MODEL``
    (default ``gpt-4o-mini``) and, if set, the OpenAI-compatible server at
    ``OPENAI_BASE_URL``. Without it: ``OfflineChatModel``. Call
    ``get_chat_model.cache_clear()`` after changing those variables.
    """
    if os.environ.get("OPENAI_API_KEY"):
        from langchain_openai import ChatOpenAI

        name = os.environ.get("BROKER_MODEL") or DEFAULT_OPENAI_MODEL
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        logger.info("agents use ChatOpenAI model %r at %s", name, base_url or "api.openai.com")
        return ChatOpenAI(model=name, base_url=base_url)
    logger.info("OPENAI_API_KEY is not set: agents use the deterministic offline model")
    return OfflineChatModel()


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that needs no network, with real tool calls.

    It decides from the conversation and the bound tools alone:

    - after tool results, it restates them verbatim;
    - after a user message that clearly matches a bound tool (the words of the message
      against the tool's name and description), it calls that tool, with arguments read
      from the message (``name: value``, then cue words such as "with Alice" or
      "about the roadmap", then fallbacks for required arguments);
    - otherwise it answers in text, introducing itself by the name a system message
      gives it ("... named Ada").

    Identical inputs give identical outputs, tool call ids included. Streaming yields
    one chunk per word, and tool calls as ``tool_call_chunks``.
    """

    @property
    def _llm_type(self) -> str:
        return "offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": "offline"}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _reply(self, messages: list[BaseMessage], **kwargs: Any) -> AIMessage:
        tools = [t["function"] for t in kwargs.get("tools") or [] if "function" in t]
        return _offline_rules.reply(messages, tools, kwargs.get("tool_choice"))

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._reply(messages, **kwargs))])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return self._generate(messages, stop, **kwargs)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in _chunks(self._reply(messages, **kwargs)):
            if run_manager:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for chunk in _chunks(self._reply(messages, **kwargs)):
            if run_manager:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk


def _pieces(text: str) -> list[str]:
    # Word-sized pieces that join back into exactly `text`.
    return re.findall(r"\s*\S+\s*", text) or ([text] if text else [])


def _chunks(message: AIMessage) -> list[ChatGenerationChunk]:
    chunks = [AIMessageChunk(content=piece) for piece in _pieces(str(message.content))]
    for index, call in enumerate(message.tool_calls):
        chunks.append(
            AIMessageChunk(
                content="",
                tool_call_chunks=[
                    tool_call_chunk(name=call["name"], args="", id=call["id"], index=index)
                ],
            )
        )
        chunks.extend(
            AIMessageChunk(
                content="",
                tool_call_chunks=[tool_call_chunk(name=None, args=piece, id=None, index=index)],
            )
            for piece in _pieces(json.dumps(call["args"]))
        )
    if not chunks:
        chunks.append(AIMessageChunk(content=""))
    # "last" makes an aggregated stream parse its tool call chunks into tool calls.
    chunks[-1].chunk_position = "last"
    return [ChatGenerationChunk(message=chunk) for chunk in chunks]
