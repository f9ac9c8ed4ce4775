"""The one exception type of `jdfa.data`."""


class DataError(ValueError):
    """A dataset is missing, damaged or malformed.

    The message names the file or folder concerned, what is wrong with it and
    how to fix it. It subclasses ValueError so callers that already treat bad
    input as ValueError keep working.
    """
