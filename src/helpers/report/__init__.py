"""Stage 3, the report: every complete run in, tables, figures and sentences out.

What ``notebooks/analysis.ipynb`` calls: ``load`` (runs -> tidy frames and statistics),
``formats`` and ``tables``, ``original`` (the original report's numbers beside ours),
``plots``, the prose, and ``build`` (execute the analysis notebook, render with Quarto).
Nothing imports this package: it is the last stage.
"""
