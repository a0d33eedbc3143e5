"""One exception type for every user-facing mistake, so the CLI can print it as one line."""


class XaiquestError(Exception):
    """A problem the user can fix; the message names the problem and the fix."""


class DataError(XaiquestError):
    """Missing, corrupt or inconsistent data."""


class ConfigError(XaiquestError):
    """An invalid experiment configuration."""


class UnknownNameError(XaiquestError):
    """A name (model, method, layer, ...) that no registry knows."""
