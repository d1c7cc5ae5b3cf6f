"""`ifd_nb run RECIPE.yaml`: experience, score and selections from one file; a rerun reuses the experience and gives
the same outputs; a run killed with SIGKILL and rerun gives what an uninterrupted run gives; bad recipes are refused
with the step named."""
import json, os, shutil, signal, subprocess, time
import pandas as pd
import pytest
import yaml
from ifd_nb.cli import main
from ifd_nb.data import demo_data_path, read_rows

EXE = shutil.which("ifd_nb")


def write_recipe(folder, model, extra: str = "", n_rows: int = 40) -> str:
    "A recipe over `n_rows` distinct demo-like rows in `folder`: score with `model`, two selections."
    rows = read_rows(demo_data_path())
    data = [dict(rows[i % len(rows)], id=i) for i in range(n_rows)]  # an id column: every row its own key
    pd.DataFrame(data).to_json(folder/"data.jsonl", orient="records", lines=True)
    (folder/"recipe.yaml").write_text(
        f"input: data.jsonl\n{extra}score: {{output: scores.parquet, model: {model}, quiet: true, chunk_rows: 16}}\n"
        "select:\n  - {output: top.jsonl, rate: 0.25}\n  - {output: rand.jsonl, rule: random, top: 5, seed: 1}\n")
    return str(folder/"recipe.yaml")


def outputs(folder) -> dict:
    "What a run leaves that must not depend on how it got there: the scores and the selections."
    s = pd.read_parquet(folder/"scores.parquet").drop(columns=["scored_by"])  # the model's path names the folder
    return dict(scores=s, top=(folder/"top.jsonl").read_text(), rand=(folder/"rand.jsonl").read_text())


def test_recipe_with_experience_runs_and_reruns(tmp_path, tiny_model_folder, capsys):
    shutil.copytree(tiny_model_folder, tmp_path/"base")
    extra = "experience: {output: pre, model: base, clusters: 2, per_cluster: 3, global_batch: 4, lr: 0.001}\n"
    recipe = write_recipe(tmp_path, "experience", extra)
    assert main(["run", recipe]) == 0
    made = json.loads((tmp_path/"pre"/"brief_experience.json").read_text())
    assert made["clusters"] == 2 and 1 <= len(made["chosen"]) <= 6 and made["base_model"] == str(tmp_path/"base")
    first = outputs(tmp_path)
    card = yaml.safe_load((tmp_path/"top.jsonl.README.md").read_text().split("---\n")[1])["ifd_nb"]
    assert card["output"] == "top.jsonl" and card["recipe"]["steps"]["experience"]["clusters"] == 2
    assert str(card["scored_with"]["scored_by"]).endswith("pre")  # scored with the experience step's model
    assert (tmp_path/"rand.jsonl.README.md").exists() and card["scores"] == "scores.parquet"  # named from the card
    assert card["recipe"]["file"] == "recipe.yaml" and str(tmp_path) not in (tmp_path/"top.jsonl.README.md").read_text()
    capsys.readouterr()
    assert main(["run", recipe]) == 0
    assert "holds a brief experience made as this step says: reused" in capsys.readouterr().err
    again = outputs(tmp_path)
    pd.testing.assert_frame_equal(first.pop("scores"), again.pop("scores"))
    assert first == again
    text = (tmp_path/"recipe.yaml").read_text().replace("clusters: 2", "clusters: 3")
    (tmp_path/"recipe.yaml").write_text(text)  # another setting: the folder's model is not this step's
    assert main(["run", recipe]) == 0
    assert "made otherwise (clusters 2 -> 3): trained again" in capsys.readouterr().err
    assert json.loads((tmp_path/"pre"/"brief_experience.json").read_text())["clusters"] == 3


@pytest.mark.slow
def test_recipe_killed_and_rerun_equals_an_uninterrupted_run(tmp_path, tiny_model_folder):
    (tmp_path/"a").mkdir(); (tmp_path/"b").mkdir()
    whole = write_recipe(tmp_path/"a", tiny_model_folder, n_rows=320)  # 20 chunks: the kill lands after 3
    killed = write_recipe(tmp_path/"b", tiny_model_folder, n_rows=320)
    assert subprocess.run([EXE, "run", whole], capture_output=True, timeout=900).returncode == 0
    p = subprocess.Popen([EXE, "run", killed], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path/"b"/"scores.parquet.shards"
    t0 = time.time()
    while len(list(shards.glob("shard-*.parquet"))) < 3 and time.time() - t0 < 300 and p.poll() is None:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert not (tmp_path/"b"/"top.jsonl").exists(), "the run finished before it was killed: nothing was tested"
    assert subprocess.run([EXE, "run", killed], capture_output=True, timeout=900).returncode == 0
    a, b = outputs(tmp_path/"a"), outputs(tmp_path/"b")
    pd.testing.assert_frame_equal(a.pop("scores"), b.pop("scores"))
    assert a == b


@pytest.mark.parametrize("text, says", [
    ("- a\n- b\n", "a recipe is a mapping"),
    ("input: d.jsonl\nscore: {output: s.parquet}\ncolour: red\n", "unknown keys ['colour']"),
    ("input: d.jsonl\nselect: {output: a.jsonl}\n", "a recipe needs 'score'"),
    ("input: d.jsonl\nscore: {model: embedded}\n", "with an output"),
    ("input: d.jsonl\nscore: {output: s.parquet, model: experience}\n", "the recipe has no experience step"),
    ("input: d.jsonl\nscore: {output: s.parquet, temperature: 2}\n", "the score step has an option"),
    ("input: [d.jsonl\n", "not valid YAML"),
    # the whole recipe is checked before its first step: options and paths of the later steps too
    ("input: d.jsonl\nscore: {output: s.parquet}\nselect: {output: a.jsonl, rate: 2}\n", "--rate must be a share"),
    ("input: d.jsonl\nscore: {output: s.parquet}\nselect: {output: a.txt, top: 1}\n", "must end in .json"),
    ("input: d.jsonl\nscore: {output: s.parquet}\nselect: [{output: a.jsonl, top: 1}, {output: a.jsonl, rate: 0.5}]\n",
     "the select 2 step writes"),
    ("input: d.jsonl\nscore: {output: s.parquet}\nselect: {output: d.jsonl, top: 1}\n", "is the input file"),
    ("input: d.jsonl\nscore: {output: d.jsonl}\n", "the score step's output"),
    ("input: d.jsonl\nscore: {output: s.parquet, mode: cherry, template: chat}\n", "mode cherry reproduces"),
    ("input: d.jsonl\nexperience: {output: s.parquet}\nscore: {output: s.parquet}\n", "the score step writes"),
])
def test_bad_recipes_are_refused(tmp_path, capsys, text, says, no_model):
    (tmp_path/"r.yaml").write_text(text)
    (tmp_path/"d.jsonl").write_text('{"instruction": "Hi", "output": "Hello"}\n')
    assert main(["run", str(tmp_path/"r.yaml")]) == 2
    assert says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl", "r.yaml"]  # nothing written


@pytest.fixture
def no_model(monkeypatch):
    "Loading a model fails the test: a bad recipe is refused before."
    import transformers
    def loaded(*a, **k): raise AssertionError("the model loaded")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loaded)
