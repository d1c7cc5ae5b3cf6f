"""Project layout checks: docs config is the one nbdev reads, README mirrors index.ipynb."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_quarto_config_is_the_one_nbdev_reads():
    "nbdev 2 reads nbs/_quarto.yml; it must be the top-level file itself, not a copy that can drift."
    assert (ROOT/"nbs"/"_quarto.yml").resolve() == (ROOT/"_quarto.yml").resolve()
    assert "metadata-files" in (ROOT/"_quarto.yml").read_text()


def test_readme_quick_start_matches_index_notebook():
    nb = json.loads((ROOT/"nbs"/"index.ipynb").read_text())
    md = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    block = lambda s: s.split("## Quick start", 1)[1].split("```sh", 1)[1].split("```", 1)[0].strip()
    readme = (ROOT/"README.md").read_text()
    assert block(readme) == block(md)
    assert len(block(readme).splitlines()) == 2


def test_demo_data_is_packaged():
    from ifd_nb.data import demo_data_path
    assert demo_data_path().exists() and (demo_data_path().parent/"README.md").exists()
