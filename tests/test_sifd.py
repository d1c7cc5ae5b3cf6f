"""S-IFD (`--mode tshirt`): the data set's token threshold makes every row depend on every other, so a resumed run
and a run split over two processes must give the table one uninterrupted process gives; T-SHIRT's selection on it."""
import os, shutil, subprocess
import pandas as pd
import pytest
from ifd_nb.data import demo_data_path, read_rows

EXE = shutil.which("ifd_nb")


def score(data, out, model, env=None, launcher=()):
    cmd = [*launcher, EXE, "score", str(data), "-o", str(out), "--mode", "tshirt", "--model", str(model),
           "--noise-passes", "5", "--chunk-rows", "4", "-q"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})


@pytest.mark.slow
def test_one_process_a_resumed_run_and_two_processes_give_one_table(tmp_path, tiny_model_folder):
    data = tmp_path/"d.jsonl"
    pd.DataFrame(read_rows(demo_data_path(), limit=24)).to_json(data, orient="records", lines=True)
    one = score(data, tmp_path/"one.parquet", tiny_model_folder)
    assert one.returncode == 0, one.stderr[-2000:]
    killed = score(data, tmp_path/"resumed.parquet", tiny_model_folder, env={"IFD_NB_KILL_AFTER_SHARDS": "2"})
    assert killed.returncode == -9 and not (tmp_path/"resumed.parquet").exists()
    again = score(data, tmp_path/"resumed.parquet", tiny_model_folder)
    assert again.returncode == 0 and "8 already scored" in again.stdout, again.stdout + again.stderr[-2000:]
    tables = {"one": pd.read_parquet(tmp_path/"one.parquet"), "resumed": pd.read_parquet(tmp_path/"resumed.parquet")}
    if shutil.which("torchrun"):
        two = score(data, tmp_path/"two.parquet", tiny_model_folder,
                    launcher=("torchrun", "--nproc_per_node", "2", "--no-python"))
        assert two.returncode == 0, two.stderr[-2000:]
        tables["two"] = pd.read_parquet(tmp_path/"two.parquet")
    for name, t in tables.items(): pd.testing.assert_frame_equal(t, tables["one"], obj=name)
    assert (tables["one"].status == "ok").sum() >= 12
    sel = tmp_path/"sel.jsonl"
    r = subprocess.run([EXE, "select", str(tmp_path/"one.parquet"), "-o", str(sel), "--rule", "tshirt", "--top", "3"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    from ifd_nb.sifd import select_tshirt
    want = select_tshirt(tables["one"], 3)["index"].tolist()
    assert pd.read_json(sel, lines=True)["index"].tolist() == want


def test_tshirt_options_are_checked_before_the_model(tmp_path, capsys, monkeypatch):
    from ifd_nb.cli import main
    import transformers
    def loaded(*a, **k): raise AssertionError("the model loaded")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loaded)
    data = tmp_path/"d.jsonl"; data.write_text('{"instruction": "Hi", "output": "Hello there"}\n')
    for more, says in ((["--template", "alpaca"], "reproduces T-SHIRT's script"),
                       (["--noise-passes", "1"], "n_noisy must be at least 2"),
                       (["--token-ratio", "0"], "ratio must be a share")):
        code = main(["score", str(data), "-o", str(tmp_path/"s.parquet"), "--mode", "tshirt", "-q", *more])
        assert code == 2 and says in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.jsonl"]  # nothing written, no shard folder left


def test_an_answer_that_tokenizes_otherwise_after_its_instruction_is_named():
    "T-SHIRT aligns the two passes by position: where the instruction's newline merges with the answer's, it cannot."
    from ifd_nb.data import SkipSample
    from ifd_nb.models import load_tokenizer
    from ifd_nb.sifd import tshirt_ids
    tok = load_tokenizer("embedded")
    assert len(tshirt_ids(tok, {"instruction": "Say hi", "output": "Hi there."})[1]) > 1
    for answer, status in (("\n\nHi there.", "tshirt_unaligned"), ("!", "answer_truncated_away")):
        with pytest.raises(SkipSample) as e: tshirt_ids(tok, {"instruction": "Say hi", "output": answer})
        assert e.value.status == status
