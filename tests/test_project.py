"""Project layout checks: docs config is the one nbdev reads, README mirrors index.ipynb."""
import json
from pathlib import Path
import pytest

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


def test_readme_is_generated_from_index_notebook(tmp_path):
    "README.md is `.ci/make_readme.py`'s output from nbs/index.ipynb: the notebook is the source, nothing drifts."
    import shutil, subprocess, sys
    (tmp_path/".ci").mkdir(); (tmp_path/"nbs").mkdir()
    shutil.copy(ROOT/".ci"/"make_readme.py", tmp_path/".ci")
    shutil.copy(ROOT/"nbs"/"index.ipynb", tmp_path/"nbs")
    subprocess.run([sys.executable, str(tmp_path/".ci"/"make_readme.py")], check=True)
    assert (tmp_path/"README.md").read_text() == (ROOT/"README.md").read_text()


def test_readme_template_table_is_the_result_file():
    "The README's measured template table is rendered from the newest template result, not typed."
    from ifd_nb.bench.template_facts import readme_table
    newest = sorted((ROOT/"nbs"/"bench"/"results").glob("cpu_templates_*.json"))[-1]
    readme = (ROOT/"README.md").read_text()
    assert readme_table(json.loads(newest.read_text())) in readme
    assert newest.name in readme


def test_chat_demo_is_packaged_and_matches_its_card():
    from ifd_nb.data import chat_demo_path, read_rows
    rows = read_rows(chat_demo_path())
    answers = [m for r in rows for m in r["messages"] if m["role"] == "assistant"]
    off = sum(len(r["off_topic_turns"]) for r in rows)
    card = (chat_demo_path().parent/"README.md").read_text()
    assert f"{len(rows)} short conversations ({len(answers)} assistant answers)" in card and f"the {off} answers" in card
    for r in rows:  # every conversation alternates user and assistant turns, and names real answers as off topic
        assert [m["role"] for m in r["messages"]] == ["user", "assistant"] * (len(r["messages"]) // 2)
        assert all(0 <= k < len(r["messages"]) // 2 for k in r["off_topic_turns"])
    readme = (ROOT/"README.md").read_text()
    shown = json.loads(readme.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert shown == {k: v for k, v in rows[1].items() if k != "off_topic_turns"}  # the README's example is bundled


@pytest.mark.slow
def test_the_wheel_holds_the_library_and_its_launch_table_not_the_benchmarks(tmp_path):
    "`pip install .` installs the library only: the benchmark wing runs from a clone; the launch table is package data."
    import subprocess, sys, zipfile
    from test_docs import project_copy
    src = project_copy(tmp_path/"clone")  # what a clone holds: no build/ or egg-info left by an earlier install
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    names = zipfile.ZipFile(next(tmp_path.glob("ifd_nb-*.whl"))).namelist()
    assert not [n for n in names if n.startswith("ifd_nb/bench/")]
    for kept in ("ifd_nb/kernels/launch_table.json", "ifd_nb/kernels/linear_ce.py", "ifd_nb/assets/demo.jsonl",
                 "ifd_nb/cli.py"):
        assert kept in names, kept
