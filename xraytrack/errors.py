"""The one exception type users see as a one-line message instead of a traceback."""


class XrayTrackError(Exception):
    """A problem with the user's input or environment that they can fix themselves."""
