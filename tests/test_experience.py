"""`ifd_nb experience`: the brief-experience model built on the command line is the one `brief_experience` builds,
and `ifd_nb score --model FOLDER` scores with it."""
import json
import pandas as pd
import pytest
import torch
from ifd_nb.cli import main
from ifd_nb.data import read_rows, demo_data_path
from ifd_nb.experience import brief_experience, experience_pool
from ifd_nb.ifd import score_rows
from ifd_nb.models import load_model


@pytest.fixture(scope="module")
def base_folder(tiny_model_folder):
    return tiny_model_folder


def test_experience_command_saves_the_model_that_scores(base_folder, tmp_path, capsys):
    out = tmp_path/"pre"
    args = ["--model", str(base_folder), "--limit", "24", "--clusters", "3", "--per-cluster", "2", "--lr", "1e-3", "--global-batch", "2", "--seed", "1"]
    assert main(["experience", str(demo_data_path()), "-o", str(out), "-q", *args]) == 0
    err = capsys.readouterr().err
    assert "6 of 24 rows chosen (3 clusters x 2)" in err and f"--model {out}" in err
    info = json.loads((out/"brief_experience.json").read_text())
    assert info["trained_on"] == 6 and len(info["chosen"]) == 6 and info["base_model"] == str(base_folder)
    assert info["saved_dtype"] == "float32"  # --save-dtype auto: what scoring on this device (a CPU) uses

    rows = read_rows(demo_data_path())[:24]
    base, tok = load_model(str(base_folder), device="cpu", dtype=torch.float32)
    want_base = pd.DataFrame(score_rows(rows[:6], base, tok, progress=False))
    model, chosen = brief_experience(base, tok, rows, n_clusters=3, per_cluster=2, lr=1e-3, global_batch=2, seed=1)  # the same step in Python
    assert chosen.tolist() == info["chosen"]
    want = pd.DataFrame(score_rows(rows[:6], model, tok, progress=False))
    assert (want.ifd - want_base.ifd).abs().max() > 1e-4  # the fine-tuning changed the scores ...

    assert main(["score", str(demo_data_path()), "-o", str(tmp_path/"s.csv"), "--limit", "6", "--model", str(out), "-q",
                 "--device", "cpu"]) == 0
    got = pd.read_csv(tmp_path/"s.csv")
    assert (got.ifd - want.ifd).abs().max() < 1e-5  # ... and the saved folder scores as the model in memory


def test_experience_draws_from_a_pool_and_reads_other_column_names(base_folder, tmp_path, capsys):
    rows = read_rows(demo_data_path())[:24]
    dolly = tmp_path/"dolly.jsonl"  # Dolly's column names: read as instruction/input/output, and said so
    dolly.write_text("".join(json.dumps({"instruction": r["instruction"], "context": r.get("input", ""), "response": r["output"]}) + "\n"
                             for r in rows))
    out = tmp_path/"pooled"
    args = ["--model", str(base_folder), "--clusters", "3", "--per-cluster", "2", "--lr", "1e-3", "--global-batch", "2", "--pool", "16", "--seed", "2"]
    assert main(["experience", str(dolly), "-o", str(out), "-q", *args]) == 0
    err = capsys.readouterr().err
    assert "input <- 'context'" in err and "output <- 'response'" in err
    info = json.loads((out/"brief_experience.json").read_text())
    assert info["pool"] == 16 and f"{len(info['chosen'])} of 24 rows chosen (a pool of 16, 3 clusters x 2)" in err
    base, tok = load_model(str(base_folder), device="cpu", dtype=torch.float32)
    _, chosen = brief_experience(base, tok, rows, n_clusters=3, per_cluster=2, lr=1e-3, global_batch=2, seed=2, pool=16)
    assert chosen.tolist() == info["chosen"]
    assert set(chosen.tolist()) <= set(experience_pool(24, 16, seed=2).tolist())


@pytest.mark.parametrize("flag,value,message", [("--clusters", "0", "n_clusters must be a positive number"),
                                                ("--pool", "-5", "pool must be a positive number"),
                                                ("--fields", "output=reply", "no column 'reply'")])
def test_experience_bad_arguments_are_one_clear_error(base_folder, tmp_path, capsys, flag, value, message):
    assert main(["experience", str(demo_data_path()), "-o", str(tmp_path/"m"), "--model", str(base_folder), flag, value, "-q"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path/"m").exists()


def test_experience_with_lora_saves_a_plain_merged_model(base_folder, tmp_path):
    pytest.importorskip("peft")  # a dev requirement: CI has it
    out = tmp_path/"pre_lora"
    args = ["--model", str(base_folder), "--limit", "24", "--clusters", "3", "--per-cluster", "2", "--lr", "1e-2", "--global-batch", "2", "--lora"]
    assert main(["experience", str(demo_data_path()), "-o", str(out), "-q", "--device", "cpu", *args]) == 0
    assert not list(out.glob("adapter_*"))  # merged: no adapter files, a folder any loader reads
    rows = read_rows(demo_data_path())[:6]
    base, tok = load_model(str(base_folder), device="cpu", dtype=torch.float32)
    want_base = pd.DataFrame(score_rows(rows, base, tok, progress=False))
    model, _ = brief_experience(base, tok, read_rows(demo_data_path())[:24], n_clusters=3, per_cluster=2, lr=1e-2, global_batch=2, lora=True)
    want = pd.DataFrame(score_rows(rows, model, tok, progress=False))
    merged, mtok = load_model(str(out), device="cpu", dtype=torch.float32)
    assert type(merged).__name__ == "LlamaForCausalLM"
    got = pd.DataFrame(score_rows(rows, merged, mtok, progress=False))
    assert (want.ifd - want_base.ifd).abs().max() > 1e-3
    assert (got.ifd - want.ifd).abs().max() < 1e-5  # merging the adapters changes no score


def test_experience_saves_in_the_dtype_asked(base_folder, tmp_path):
    out = tmp_path/"pre_bf16"
    args = ["--model", str(base_folder), "--limit", "24", "--clusters", "3", "--per-cluster", "2", "--lr", "1e-3", "--global-batch", "2", "--device", "cpu"]
    assert main(["experience", str(demo_data_path()), "-o", str(out), "-q", "--save-dtype", "bfloat16", *args]) == 0
    assert json.loads((out/"brief_experience.json").read_text())["saved_dtype"] == "bfloat16"
    size = lambda folder: sum(p.stat().st_size for p in folder.glob("*.safetensors"))
    assert 0.45 < size(out) / size(base_folder) < 0.55  # half the bytes of the float32 base
    loaded, tok = load_model(str(out), device="cpu", dtype=torch.bfloat16)
    assert next(loaded.parameters()).dtype == torch.bfloat16


def test_experience_rerun_after_a_crash_reads_the_prompt_features_back(base_folder, tmp_path, capsys, monkeypatch):
    import ifd_nb.embed, ifd_nb.experience
    out = tmp_path/"pre"
    args = ["experience", str(demo_data_path()), "-o", str(out), "-q", "--model", str(base_folder), "--limit", "24",
            "--clusters", "3", "--per-cluster", "2", "--lr", "1e-3", "--global-batch", "2", "--device", "cpu"]
    real_fine_tune = ifd_nb.experience.fine_tune
    def out_of_memory(*a, **k): raise RuntimeError("CUDA out of memory (simulated)")
    monkeypatch.setattr(ifd_nb.experience, "fine_tune", out_of_memory)
    with pytest.raises(RuntimeError, match="simulated"): main(args)
    assert (out/"prompt_features.npz").exists() and not (out/"config.json").exists()
    monkeypatch.setattr(ifd_nb.experience, "fine_tune", real_fine_tune)
    computed = []
    real_features = ifd_nb.embed.instruction_features
    monkeypatch.setattr(ifd_nb.embed, "instruction_features", lambda *a, **k: computed.append(1) or real_features(*a, **k))
    capsys.readouterr()
    assert main(args) == 0
    assert "prompt features of 24 rows read back" in capsys.readouterr().err and computed == []
    base, tok = load_model(str(base_folder), device="cpu", dtype=torch.float32)
    _, chosen = brief_experience(base, tok, read_rows(demo_data_path())[:24], n_clusters=3, per_cluster=2, lr=1e-3, global_batch=2)
    assert json.loads((out/"brief_experience.json").read_text())["chosen"] == chosen.tolist()


def test_experience_defaults_to_the_published_recipe(base_folder, tmp_path, capsys):
    "Without options: a global batch of 128 by accumulation over micro-batches of 4, cosine after a 3% warm-up, and "
    "the 25-75 perplexity band of the published command; all of it stored with the model."
    out = tmp_path/"pre"
    assert main(["experience", str(demo_data_path()), "-o", str(out), "-q", "--model", str(base_folder),
                 "--limit", "40", "--clusters", "2", "--per-cluster", "10"]) == 0
    info = json.loads((out/"brief_experience.json").read_text())
    assert info["perplexity_band"] == [25, 75] and info["lr"] == 2e-5
    r = info["recipe"]
    assert (r["micro_batch"], r["accumulation"], r["global_batch"], r["schedule"]) == (4, 32, 128, "cosine")
    assert (r["optimizer_steps"], r["warmup_steps"], r["examples"]) == (1, 1, info["trained_on"])
    assert "1 optimizer step(s) of up to 128 rows (cosine)" in capsys.readouterr().err
