"""The failures of the steps that a user can act on; light to import, so that task modules can name them at parse time."""


class DataError(ValueError):
    """The dataset cannot be used; the message names the file, the column and the problem."""


class QualityGateError(RuntimeError):
    """The new version failed the promotion gates, and `training.promotion.fail_run` asks that this fails the run."""
