"""The one exception type for problems with what the user gave us."""


class InputError(ValueError):
    """Bad user input (a file, folder, config key or value), named in the message.

    Command-line entry points report it in one line and exit with status 2, no traceback.
    """
