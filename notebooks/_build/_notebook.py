"""Shared by the notebook builders: ``cells`` ("md" or "code", source) -> ``notebooks/<name>.ipynb``."""

from pathlib import Path

import nbformat as nbf


def write_notebook(cells: list[tuple[str, str]], name: str) -> Path:
    nb = nbf.v4.new_notebook()
    nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    out = Path(__file__).parents[1] / f"{name}.ipynb"
    nbf.write(nb, out)
    print(f"wrote {out}")
    return out
