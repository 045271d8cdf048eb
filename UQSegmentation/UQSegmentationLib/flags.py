"""Which summary.json flags the module shows a reader (status line, result list).

FLAG_KEYS: summary.json booleans (`multimodal`, `ood`); FINDING_FLAGS: task findings that are listed in summary.json's
`flags` with a sentence in `flag_details` but do not set `ood` (ct-organs' `detached_fragments`: an organ predicted
in more than one piece, docs/cli-contract.md)."""

FLAG_KEYS = ("multimodal", "ood")
#: the engine's uqseg.io.input_checks.FINDING_FLAGS (and shown_flags below its shown_flags), repeated here: the Lib
#: reads summary.json without importing the engine at module level (Testing/test_ct_fragments.py checks they agree)
FINDING_FLAGS = ("detached_fragments",)


def shown_flags(summary: dict) -> list[str]:
    """The flags of a summary a reader must see, booleans first: e.g. ["ood", "detached_fragments"]."""
    listed = summary.get("flags") or []
    return [k for k in FLAG_KEYS if summary.get(k)] + [k for k in FINDING_FLAGS if k in listed]


__all__ = ["FINDING_FLAGS", "FLAG_KEYS", "shown_flags"]
