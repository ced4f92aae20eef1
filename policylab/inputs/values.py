"""Reading values as written in YAML files (scenarios, venues, rule sets)."""


def as_number(v):
    """YAML 1.1 reads ``1e9`` as a string; accept numeric strings as numbers."""
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v
