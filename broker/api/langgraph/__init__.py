"""The LangGraph Agent Server API, under ``/langgraph``: enough of it for the
``langgraph-sdk`` clients (Python and JS) and Agent Inbox to run a graph, find the
threads waiting on interrupts, read them and resume them.

Every answer goes through the broker's channel contract and every run through the
store, so they are validated, audited, applied once and seen on the dashboard, the
WebSocket and webhooks like any other. See README "LangGraph SDK and Agent Inbox".
"""

from __future__ import annotations

from broker.api.langgraph import assistants, runs, threads

routers = (assistants.router, threads.router, runs.router)
