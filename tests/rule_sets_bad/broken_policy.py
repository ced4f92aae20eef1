"""A module file that fails when imported (for the malformed rule set corpus)."""

raise RuntimeError("this policy file is broken on purpose")
