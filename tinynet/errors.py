"""The exception types tinynet raises for problems a user can fix. Each message is one line."""


class TinynetError(Exception):
    """Base class: anything wrong with the user's files, images or arguments."""


class WeightsError(TinynetError):
    """A weight file is unreadable, corrupt, hostile, or does not fit the architecture."""


class UnsupportedModelError(WeightsError):
    """A weight file is well formed but describes a network tinynet cannot run."""


class ImageError(TinynetError):
    """An image file is missing, unreadable, truncated, too large, or in a mode tinynet cannot convert."""
