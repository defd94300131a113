# The C extension's signatures (gate/_fastscan.c) for the type checker; the module exists only when a C
# compiler was there at install time, and each caller falls back to its pure-Python definition.

def boring_html(buf: bytes, pos: int, /) -> int:
    """The end of htmlstream.BORING_HTML.match(buf, pos)."""

def script_end(buf: bytes, pos: int, state: int, /) -> tuple[int, int, int]:
    """htmlstream.script_end_py in C: (index or -1, state, resume)."""

def word_positions(text: str, words: tuple[str, ...], /) -> dict[str, list[int]]:
    """Each word found in text (ASCII case-insensitively) -> its start indices."""
