"""Built-in rule sets (YAML), installed as the package ``policylab.rulesets``."""
