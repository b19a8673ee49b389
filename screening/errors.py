"""The one exception the screening stage raises for bad input."""


class ScreeningInputError(ValueError):
    """The table handed to the screening stage cannot be screened.

    The message is one human-readable sentence that names the problem (the column,
    the class, the count), fit to print on one line of a CLI's stderr.
    """


class ScreeningNotApplicable(ScreeningInputError):
    """The screens do not apply to this table (a continuous, regression target): not
    an error in the data, and recorded as its own outcome rather than a failure."""
