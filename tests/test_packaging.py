from pathlib import Path

import tomllib

ROOT = Path(__file__).parents[1]


def test_every_subpackage_is_listed_in_pyproject():
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lit_rlhf").rglob("__init__.py")}
    found.add("lit_rlhf.conf")
    assert found == listed


def test_config_package_resolves_to_the_top_level_conf_folder():
    import lit_rlhf.conf

    assert Path(lit_rlhf.conf.__file__).parent.resolve() == (ROOT / "conf").resolve()
