"""The brief: reads a results folder (never a model), builds each section's context,
renders HTML and PDF from the jinja2 templates, draws the figures and words the findings.
"""
