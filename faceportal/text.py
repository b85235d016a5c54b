"""Names people read back (a person's, an organisation's): one normal form, nothing that spoofs display.

`display_name_clean` normalises to NFKC (full-width, ligatures and compatibility forms become their
plain letters) and refuses control characters, format characters (bidirectional overrides such as
U+202E, zero-width spaces and joiners, the byte-order mark), line and paragraph separators,
private-use and unassigned code points, and names with nothing visible left once whitespace,
combining marks and blank fillers are set aside. `confusable_skeleton` folds look-alike letters
(Cyrillic and Greek homoglyphs of Latin ones, case, accents) so the admin can warn when a new name
looks like an existing one; it is a heuristic for a warning, never a reason to refuse.
"""

from __future__ import annotations

import unicodedata

# Control, format, line and paragraph separators, surrogates, private use, unassigned.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}
# Letters and symbols that render as nothing (Hangul fillers, the blank Braille pattern, ...).
_BLANK_FILLERS = {"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800", "\u180e", "\u17b4", "\u17b5"}


class NameRefused(ValueError):
    pass


def _invisible(char: str) -> bool:
    return char.isspace() or char in _BLANK_FILLERS or unicodedata.category(char) in {"Mn", "Me", "Zs"}


def display_name_clean(value: str) -> str:
    """`value` in NFKC with its ends trimmed, or `NameRefused` saying why."""
    normal = unicodedata.normalize("NFKC", value).strip()
    for char in normal:
        if unicodedata.category(char) in _REFUSED_CATEGORIES:
            raise NameRefused(f"May not contain control or format characters (U+{ord(char):04X}).")
    if all(_invisible(char) for char in normal):
        raise NameRefused("Must contain a visible character.")
    return normal


# Cyrillic and Greek letters drawn like Latin ones (after case folding), from Unicode's confusables.
_HOMOGLYPHS = str.maketrans({
    "а": "a", "в": "b", "е": "e", "ё": "e", "һ": "h", "і": "i", "ї": "i", "ј": "j", "к": "k", "ӏ": "l", "м": "m",
    "н": "h", "о": "o", "р": "p", "с": "c", "ѕ": "s", "т": "t", "у": "y", "х": "x", "ԁ": "d", "ԛ": "q", "ԝ": "w",
    "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t",
    "υ": "u", "χ": "x", "ω": "w", "0": "o", "1": "l", "|": "l", "ı": "i",
})


def confusable_skeleton(value: str) -> str:
    """A form two names share when they look alike: folded case, no accents, homoglyphs mapped."""
    text = unicodedata.normalize("NFKD", value.replace("I", "l"))
    text = "".join(char for char in text if not unicodedata.combining(char)).casefold().translate(_HOMOGLYPHS)
    return " ".join(text.replace("i", "l").split())


def lookalikes(name: str, others: list[str]) -> list[str]:
    """The names among `others` that differ from `name` but share its confusable skeleton."""
    skeleton = confusable_skeleton(name)
    return [other for other in others if other != name and confusable_skeleton(other) == skeleton]
