"""Declarative constraints of the settings: what values each field accepts."""
from dataclasses import MISSING, field


class Interval:
    """``kind`` (int or float) between ``low`` and ``high`` (None: unbounded); ``open_low`` /
    ``open_high`` exclude the bound. ``none`` allows None (the setting is then off)."""

    def __init__(self, kind, low=None, high=None, open_low=False, open_high=False, none=False):
        self.kind, self.low, self.high = kind, low, high
        self.open_low, self.open_high, self.none = open_low, open_high, none

    def accepts(self, value):
        if value is None:
            return self.none
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        if self.kind is int and int(value) != value:
            return False
        low_ok = self.low is None or (value > self.low if self.open_low else value >= self.low)
        high_ok = self.high is None or (value < self.high if self.open_high else value <= self.high)
        return low_ok and high_ok

    def describe(self):
        what = "a whole number" if self.kind is int else "a number"
        if self.low is not None and self.high is not None:
            return (f"{what} in {'(' if self.open_low else '['}{self.low:g}, {self.high:g}"
                    f"{')' if self.open_high else ']'}")
        if self.low is not None:
            return f"{what} {'>' if self.open_low else '>='} {self.low:g}"
        return what


class Boolean:
    def accepts(self, value):
        return isinstance(value, bool)

    def describe(self):
        return "true or false (JSON booleans, not strings or numbers)"


class OneOf:
    def __init__(self, *values):
        self.values = values

    def accepts(self, value):
        return isinstance(value, str) and value in self.values

    def describe(self):
        return "one of " + ", ".join(f"'{v}'" for v in self.values)


class Widths:
    def accepts(self, value):
        return (isinstance(value, tuple) and len(value) > 0
                and all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value))

    def describe(self):
        return "a non-empty list of channel counts >= 1"


def setting(default=MISSING, check=None, flag=None, why=""):
    """A setting: its default (if all presets share it), its constraint, its command-line
    flag (named in errors) and a hint for the error message."""
    return field(default=default, metadata={"check": check, "flag": flag, "why": why})
