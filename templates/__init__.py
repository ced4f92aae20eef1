"""Default brief templates (jinja2 HTML and CSS), installed as ``policylab.templates``."""
