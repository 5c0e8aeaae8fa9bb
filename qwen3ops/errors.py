"""The one exception type our CLIs turn into a clear message and exit status 2."""


class UserError(Exception):
    """Bad input from the user: the message says what is wrong and what to do."""
