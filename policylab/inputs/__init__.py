"""Inputs: reading the files users write (scenarios, rule sets) into typed objects,
with one-line errors naming file, line, key path, what was found and what is allowed.

- ``yaml.py``: the shared reading layer (UTF-8 only, safe loading, duplicate keys
  refused, the line of every key path, :class:`~policylab.inputs.yaml.Where`);
- ``values.py``: configurable fields (:func:`~policylab.inputs.values.setting`: unit,
  meaning, source, bounds) and the one typed coercion every loader uses;
- ``limits.py``: the bounds every input is held to (sizes, nesting, aliases, money per
  venue, depth, names), each with its reason;
- ``scenario.py``, ``rulesets.py``: the two kinds of file; ``market.py``: MarketParams;
- ``local_modules.py``: rule sets naming local Python files: read without running them,
  run only when allowed;
- ``assumptions.py``: the assumptions ``policylab sensitivity`` varies, with their
  documented ranges.

Add a new kind of input file here, reading it with ``yaml.parse`` and declaring its
fields with ``values.setting``.
"""
