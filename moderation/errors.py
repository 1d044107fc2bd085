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


class NotAllowed(Exception):
    """The reviewer's role or source restriction does not allow this."""


class AlreadyAnswered(Exception):
    """The golden item was answered already (a double submit, or a second tab)."""
