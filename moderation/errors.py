"""The errors services raise: intake's (an HTTP status, a message and the field it is
about), and the refusals of reviewer actions."""


class IntakeError(Exception):
    """A request we refuse, with the HTTP status and the field a product must fix."""

    def __init__(self, status: int, message: str, *, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def as_json(self) -> dict[str, str | None]:
        return {"error": self.message, "field": self.field}


class ClaimConflict(Exception):
    """Another reviewer holds a live claim on the item."""


class StaleRevision(ClaimConflict):
    """The item was edited (the product sent new content) after the page the person acted on
    was rendered: what they decided about is no longer the item's content, so nothing is
    recorded. Bait and switch (harmless text edited into harm while a reviewer has it open)
    must never ride on an approval of the harmless text."""

    def __init__(self, *, item_id: int, seen: int, current: int):
        super().__init__(
            f"item {item_id} was edited while you had it open: you saw revision {seen}, "
            f"it is at revision {current} now"
        )
        self.item_id, self.seen, self.current = item_id, seen, current


class NotAllowed(Exception):
    """The reviewer's role or source restriction does not allow this."""


class AlreadyAnswered(Exception):
    """The golden item was answered already (a double submit, or a second tab)."""
