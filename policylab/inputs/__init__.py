"""Inputs: reading the files users write (scenarios, rule sets) into typed objects,
with one-line errors naming file, line, key path, what was found and what is allowed.

Add a new kind of input file here, reading it with the shared YAML layer.
"""
