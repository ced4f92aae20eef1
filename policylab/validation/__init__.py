"""Validation: real price data, stylized facts, calibration targets per scenario with
their sources, the validation report and the leverage study.
"""
