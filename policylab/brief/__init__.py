"""The brief: reads a results folder (never a model), builds each section's context,
renders HTML and PDF from the jinja2 templates, draws the figures and words the findings.

results.py reads and checks a results folder; sections.py holds the registry of the
brief's sections (SECTIONS: name, partial template, context builder) and assembles the
templates' context; figures.py holds the registry of figures (FIGURES: id, texts, drawing
function returning the image and its data); render.py renders the templates (sandboxed)
to HTML and PDF; summary.py reads the core outcomes neutrally (page 1's matrix and bottom
line, the findings per rule set, who is affected, flagged and repeal arms); findings.py
holds metric labels and number formats; odd.py writes the ODD methodology (the annex). A new figure is one function and one line in FIGURES; a new section
is one function, one partial under templates/partials/ and one line in SECTIONS.
"""
