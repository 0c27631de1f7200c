# -*- coding: utf-8 -*-
"""Form fields whose value may be automatic.

Such fields show what happens when left alone (e.g. "auto: 0.8 x diameter", or the
presets' values) instead of a placeholder like -1 or 0. Projects saved before kept -1 or 0
there: values at or below ``autoBelow`` still mean automatic.
"""
AUTO_WORDS = ('auto', 'no limit', 'none', 'preset')


def isAuto(text):
    text = '' if text is None else str(text).strip().lower()
    return not text or text.startswith(AUTO_WORDS)


def parseOptional(text, cast, label, autoBelow=None, minimum=None):
    """None when ``text`` means automatic, else the number (``cast``); ValueError naming
    the field and the fix otherwise."""
    if isAuto(text):
        return None
    try:
        value = cast(str(text).strip())
    except ValueError:
        raise ValueError("%s: '%s' is not a number; give one or write auto" % (label, text))
    if autoBelow is not None and value <= autoBelow:
        return None
    if minimum is not None and value < minimum:
        raise ValueError('%s: %s is below %s; give a larger value or write auto'
                         % (label, text, minimum))
    return value


def presetText(values):
    """'fast 5,10,20; paper 2:20' for an auto field from {preset: value}
    (``disca_engine.settings.preset_values``)."""
    def text(value):
        if isinstance(value, list) and len(value) > 2 and value == list(range(value[0], value[-1] + 1)):
            return '%d:%d' % (value[0], value[-1])
        return ','.join(map(str, value)) if isinstance(value, list) else str(value)
    return '; '.join('%s %s' % (name, text(value)) for name, value in values.items())


def autoPresetDefault(values):
    """Default text of a preset-driven field: 'auto (preset: fast 32; paper 64)'."""
    return 'auto (preset: %s)' % presetText(values)
