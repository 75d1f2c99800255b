"""The one exception tree of drkit, and the exit code each error leaves with.

Every error a user can cause or meet is a DrkitError. Its message says what is
wrong and what to do. The CLI maps errors to exit codes in exactly one place
(drkit.cli), using ``exit_code`` from here; nothing else calls sys.exit.
"""

from __future__ import annotations


class ExitCode:
    """Documented process exit codes (README, "Exit codes")."""

    OK = 0
    INTERNAL = 1  # a bug in drkit: an unexpected exception
    BAD_INPUT = 2  # bad runbook, parameters, environment or command line
    PREFLIGHT_FAILED = 3  # read-only checks found the run cannot start safely
    STEP_FAILED = 4  # a step failed; the run can be resumed
    LOCK_HELD = 5  # another run holds the environment's lock
    TARGET_MISSED = 6  # the run completed but an RTO or RPO target was missed
    APPROVAL_REQUIRED = 7  # an approval gate with no terminal and no --yes
    REHEARSAL_FAILED = 8  # a rehearsal's run went through but regressed against its history
    INTERRUPTED = 130  # Ctrl-C / SIGTERM: journaled, lock released, resumable


class DrkitError(Exception):
    """Base of every error drkit reports to a user."""

    exit_code = ExitCode.INTERNAL

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}; {self.hint}" if self.hint else self.message


class _DetailedError(DrkitError):
    """A DrkitError that lists details (problems, findings) under its message."""

    def __init__(self, message: str, details: list[str] | None, hint: str | None) -> None:
        super().__init__(message, hint=hint)
        self._details = list(details or [])

    def __str__(self) -> str:
        text = super().__str__()
        if self._details:
            text += "\n" + "\n".join(f"  - {d}" for d in self._details)
        return text


class ConfigError(_DetailedError):
    """Bad input: a runbook, an environment, parameters or arguments.

    ``problems`` holds every problem found, each already prefixed with its dotted
    path (``steps[3].ansible.limit: ...``), so all of them are reported at once.
    """

    exit_code = ExitCode.BAD_INPUT

    def __init__(
        self, message: str, *, problems: list[str] | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, problems, hint)
        self.problems = self._details

    def __str__(self) -> str:
        # One problem reads as one line: what is wrong, then what to do.
        if len(self.problems) == 1:
            text = f"{self.message}: {self.problems[0]}"
            return f"{text}; {self.hint}" if self.hint else text
        return super().__str__()


class PreflightFailed(_DetailedError):
    """One or more read-only preflight checks failed; nothing was changed."""

    exit_code = ExitCode.PREFLIGHT_FAILED

    def __init__(self, message: str, *, findings: list[str] | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, findings, hint)
        self.findings = self._details


class StepFailed(DrkitError):
    """A step failed. The run stopped and can be resumed."""

    exit_code = ExitCode.STEP_FAILED


class LockHeld(DrkitError):
    """Another run holds the environment's lock (or a stale lock needs breaking)."""

    exit_code = ExitCode.LOCK_HELD


class TargetMissed(DrkitError):
    """The run completed, but an RTO or RPO target was missed."""

    exit_code = ExitCode.TARGET_MISSED


class ApprovalRequired(DrkitError):
    """An approval gate cannot be passed: no terminal to ask and no --yes."""

    exit_code = ExitCode.APPROVAL_REQUIRED


class Interrupted(DrkitError):
    """The operator interrupted the run (Ctrl-C or SIGTERM)."""

    exit_code = ExitCode.INTERRUPTED


class LabError(DrkitError):
    """The lab could not be built, reached or torn down."""

    exit_code = ExitCode.INTERNAL


class RehearsalFailed(DrkitError):
    """A rehearsal regressed: a failed step, a missed target, a slower RTO than its
    history allows, or a baseline not restored. ``exit_code`` is the run's own
    when the run failed (4, 6, 3), else REHEARSAL_FAILED."""

    exit_code = ExitCode.REHEARSAL_FAILED

    def __init__(self, message: str, *, exit_code: int = ExitCode.REHEARSAL_FAILED,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code
