"""Each notebook's source is ``notebooks/NN_name.py`` in jupytext's percent format; the ``.ipynb`` next to it
must hold the same cells. Only sources are compared (not outputs, ids or metadata), and nothing is executed."""

import difflib
from pathlib import Path

import jupytext
import nbformat
import pytest

NOTEBOOKS = Path(__file__).parents[1] / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def resync(source: Path) -> str:
    # --update keeps the cell ids of the existing .ipynb; unlike --sync it never takes the .ipynb as the source
    # because of file times, which would discard an edit of the .py.
    return f"jupytext --to ipynb --update notebooks/{source.name}"


def cells(nb) -> list[tuple[str, str]]:
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    notebooks = {p.stem for p in NOTEBOOKS.glob("*.ipynb")}
    sources = {p.stem for p in SOURCES}
    assert sources, "no notebook sources (notebooks/*.py) found"
    assert not notebooks - sources, (
        f"notebooks without a percent source: {sorted(notebooks - sources)}; create it with "
        "`jupytext --set-formats ipynb,py:percent notebooks/NN_name.ipynb`"
    )
    assert not sources - notebooks, (
        f"sources without a notebook: {sorted(sources - notebooks)}; create it with "
        "`jupytext --to ipynb --update notebooks/NN_name.py`"
    )


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_source_is_in_percent_format_and_paired(source):
    metadata = jupytext.read(source).metadata.get("jupytext", {})
    assert metadata.get("text_representation", {}).get("format_name") == "percent", (
        f"{source.name} has no percent-format header"
    )
    assert metadata.get("formats") == "ipynb,py:percent", f"{source.name} is not paired with its .ipynb"


@pytest.mark.parametrize("source", SOURCES, ids=[p.stem for p in SOURCES])
def test_notebook_holds_the_cells_of_its_source(source):
    notebook = source.with_suffix(".ipynb")
    if not notebook.exists():
        pytest.fail(f"{notebook.name} is missing: run `{resync(source)}`")
    expected, actual = cells(jupytext.read(source)), cells(nbformat.read(notebook, as_version=4))
    if expected == actual:
        return
    where = next((i for i, (e, a) in enumerate(zip(expected, actual)) if e != a), min(len(expected), len(actual)))
    detail = f"{len(expected)} cells in the source, {len(actual)} in the notebook"
    if where < min(len(expected), len(actual)):
        (kind_e, text_e), (kind_a, text_a) = expected[where], actual[where]
        diff = difflib.unified_diff(text_a.splitlines(), text_e.splitlines(), notebook.name, source.name, lineterm="")
        detail = f"cell {where} ({kind_a} in the notebook, {kind_e} in the source):\n" + "\n".join(list(diff)[:40])
    pytest.fail(f"{notebook.name} is out of date with {source.name}; run `{resync(source)}`.\n{detail}")
