"""Errors the lineage layer raises for bad input; callers map them to exit 2."""


class LineageInputError(ValueError):
    """Bad input (corrupt file, bad manifest, invalid licence...): one readable message."""


class NotFound(LookupError):
    """A named dataset or version does not exist."""
