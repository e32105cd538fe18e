"""Text from files, shown on a terminal: label names, a model's meta["source"], file names.

Such text is chosen by whoever made the file. Printed as is, a newline in a label forges a line of
``tinynet classify`` output (a fake "99.00%  cat" under the real image), and an ANSI escape sequence
recolours, moves or clears the user's terminal. ``printable`` writes every control character
(C0, DEL, C1), line and paragraph separator and invisible format character (bidirectional overrides
included) as a visible escape, the way Python's repr does; the rest of the text is left alone.
"""
import unicodedata

ESCAPED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def printable(text):
    """``text`` (any object, through str) with every character that could act on a terminal or start a
    new line escaped: "a\\nb" -> "a\\\\nb", "\\x1b[2J" -> "\\\\x1b[2J"."""
    text = str(text)
    if text.isprintable():  # the common case, and fast: isprintable is False for everything escaped below
        return text
    return "".join(_escape(c) if unicodedata.category(c) in ESCAPED_CATEGORIES else c for c in text)


def _escape(character):
    code = ord(character)
    if character in "\t\n\r":
        return repr(character)[1:-1]
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
