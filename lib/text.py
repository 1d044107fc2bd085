"""Wording shared by both apps' messages."""


def plural(n: int, singular: str, plural_form: str | None = None) -> str:
    """ "1 item", "2 items", "1,200 items": a count with its noun, in the right number."""
    return f"{n:,} {singular if n == 1 else plural_form or singular + 's'}"
