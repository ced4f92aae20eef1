"""The engine: per-account state in NumPy arrays and the mechanics that move it (books,
execution and impact, margin, liquidation and ADL, the compiled kernels, the exogenous
path, the venues' own agents, how rules are applied to venues and accounts, the traders'
venue choice, the per-run effects ledger, the money audit), plus the replay and
per-trader reference models that test it.

The engine imports nothing from metrics, experiments, the brief or the CLI.
"""
