"""The workspace store (``store``, with read-only ``view``\\ s) and backfill of missed messages.

Kept current by dispatcher observers; imports only the engine's public seams
(``slackrtm._engine.dispatch``), never its internals.
"""
