"""The failures of the steps that a user can act on; light to import, so that task modules can name them at parse time."""

MAX_SHOWN_CHARS = 80  # of a value, or a list of field names, that a message quotes


def shown(text: str) -> str:
    """`text` cut to MAX_SHOWN_CHARS with an ellipsis: a message never echoes a whole 4 MB value back."""
    return text if len(text) <= MAX_SHOWN_CHARS else text[: MAX_SHOWN_CHARS - 1] + "…"


class DataError(ValueError):
    """The dataset cannot be used; the message names the file, the column and the problem."""


class QualityGateError(RuntimeError):
    """The new version failed the promotion gates, and `training.promotion.fail_run` asks that this fails the run."""
