"""Failures of a backend as a whole (per-agent failures are ``AgentResult.error``)."""


class BackendUnavailable(RuntimeError):
    """The backend cannot serve at all (e.g. its server did not start); every agent falls back."""
