"""README.md's table of hostile inputs is the one the test suite generates (Testing/hostile_inputs_table.py)."""

from __future__ import annotations

import hostile_inputs_table


def test_readme_table_is_generated_from_the_hostile_input_suite():
    text = hostile_inputs_table.README.read_text(encoding="utf-8")
    in_readme = hostile_inputs_table.readme_table(text)
    assert in_readme is not None, "README.md has no generated hostile-inputs table"
    assert in_readme == hostile_inputs_table.table(), \
        "README.md's hostile-inputs table is stale: run .venv/bin/python Testing/hostile_inputs_table.py --write"
