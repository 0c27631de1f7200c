"""Errors the engine reports to users as one clear line (no traceback)."""


class EngineError(Exception):
    """A problem with the user's input or settings; the message names it and the fix."""
