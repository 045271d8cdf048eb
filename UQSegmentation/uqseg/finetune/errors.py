"""The two ways fine-tuning refuses something: one case (skipped, the run goes on) or the whole run."""

from __future__ import annotations


class CaseSkipped(Exception):
    """A corrected case cannot train the model (e.g. its label does not fit its image); the message is the reason.
    The run skips the case and reports it."""


class FinetuneError(Exception):
    """The run cannot go on (no usable case, a missing or unreadable input image, ...): one line for the user."""
