"""Errors that map to the trainer's exit codes (0 ok, 2 not retryable, 1 retryable).

The Job's podFailurePolicy fails fast on exit code 2, so only raise these for problems that a
retry cannot fix: a bad configuration or bad data.
"""

from pitwall_api.contract import EXIT_BAD_INPUT, EXIT_OK, EXIT_RETRYABLE  # noqa: F401 - re-exported


class PitwallError(Exception):
    """A problem the user must fix; the message is shown as is and the exit code is 2."""

    exit_code = EXIT_BAD_INPUT


class ConfigError(PitwallError):
    """Bad arguments or a bad TrainingRun spec."""


class DataError(PitwallError):
    """Missing, unreadable or invalid data; `problems` lists every finding (file, column, row)."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__(message)

    def __str__(self) -> str:
        head = super().__str__()
        if not self.problems:
            return head
        return head + "\n" + "\n".join(f"  - {p}" for p in self.problems)
