# -*- coding: utf-8 -*-
"""Form texts -> values: class lists here, K ranges with the engine's one parser."""
import re

from disca_engine.contract import format_k_range, parse_k_range


def parseClassList(text):
    """'1,3-5' -> [1, 3, 4, 5]; empty -> []. Raises ValueError with the bad token."""
    numbers = []
    for token in re.split(r'[,\s]+', (text or '').strip()):
        if not token:
            continue
        m = re.fullmatch(r'(\d+)(?:-(\d+))?', token)
        if not m:
            raise ValueError("'%s' is not a class number or range (use e.g. 1,3-5)" % token)
        lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
        if hi < lo:
            raise ValueError("range '%s' goes backwards (use %d-%d)" % (token, hi, lo))
        numbers.extend(n for n in range(lo, hi + 1) if n not in numbers)
    return numbers


def parseKRange(text):
    """Candidate K values of the form's K range: the engine's own syntax and rules
    ('2:20' or '5,10,20'); raises ValueError (the engine's message) otherwise."""
    try:
        return parse_k_range(text or '')
    except Exception as exc:  # KRangeError
        raise ValueError(str(exc))


def kRangeArgument(text):
    """The engine's --k-range value for the form text ('2:20', '5,10,20')."""
    return format_k_range(parseKRange(text))
