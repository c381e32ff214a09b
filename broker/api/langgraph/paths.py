"""Path segments that are ids, but not the words of the routes beside them.

``GET /langgraph/threads/search`` would otherwise be a thread named "search", and
``405``'s ``Allow`` would name GET there (broker/api/app.py ``_allowed``), as
``POST /interrupts/resolve`` is kept from the interrupt routes.
"""

from __future__ import annotations

from starlette.convertors import StringConvertor, register_url_convertor


class _NotSearch(StringConvertor):
    regex = "(?!search$)[^/]+"


class _NotRunVerb(StringConvertor):
    regex = "(?!(wait|stream)$)[^/]+"


register_url_convertor("lg_id", _NotSearch())
register_url_convertor("lg_run", _NotRunVerb())
