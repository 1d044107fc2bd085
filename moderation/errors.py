"""The error intake raises: an HTTP status, a message and the field it is about."""


class IntakeError(Exception):
    """A request we refuse, with the HTTP status and the field a product must fix."""

    def __init__(self, status: int, message: str, *, field: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field

    def as_json(self) -> dict[str, str | None]:
        return {"error": self.message, "field": self.field}
