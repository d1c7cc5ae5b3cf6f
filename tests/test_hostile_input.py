"""The hostile-input battery: what a careful user can throw at ifd_nb, grouped by what each case protects (input
reading, paths and locks, resume keys, option checks). Every case ends in the right rows, or in one clear line (exit 2)
before the model loads where the information is there; never in lost or mixed data or a traceback."""
import json, os, subprocess, sys
from pathlib import Path
import pandas as pd
import pyarrow as pa, pyarrow.parquet as pq
import pytest
from ifd_nb.cli import main
from ifd_nb.data import read_rows, prompt_and_answer, SkipSample

ROWS = [{"instruction": "Name a colour.", "output": "Blue."},
        {"instruction": "Add 2 and 2.", "input": "0", "output": "4"},
        {"instruction": "Say hi.", "output": "Hi!"}]


def write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def cli(capsys, *args) -> tuple[int, str]:
    "Exit code and everything printed."
    code = main([str(a) for a in args])
    got = capsys.readouterr()
    return code, got.out + got.err


@pytest.fixture
def no_model(monkeypatch):
    "Loading a model fails the test: what must be refused is refused before."
    import transformers
    def loaded(*a, **k): raise AssertionError("the model loaded")
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", loaded)


@pytest.fixture
def data(tmp_path) -> Path:
    return write_jsonl(tmp_path/"data.jsonl", ROWS)


def score(capsys, model, data, out, *more) -> tuple[int, str]:
    return cli(capsys, "score", data, "-o", out, "--model", model, "-q", *more)


# ---------------------------------------------------------------- input reading

def test_byte_order_mark_is_not_data(tmp_path):
    (tmp_path/"a.json").write_text(json.dumps(ROWS), encoding="utf-8-sig")
    (tmp_path/"a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8-sig")
    assert read_rows(tmp_path/"a.json") == ROWS
    assert read_rows(tmp_path/"a.jsonl") == ROWS


def test_json_object_gives_its_list_of_rows_or_names_the_candidates(tmp_path):
    p = tmp_path/"wrapped.json"
    p.write_text(json.dumps({"tags": ["a", "b"], "meta": {"n": 3}, "data": ROWS}))
    assert read_rows(p) == ROWS
    p.write_text(json.dumps({"train": ROWS, "test": ROWS[:1]}))
    with pytest.raises(ValueError, match="'train', 'test'"): read_rows(p)
    p.write_text(json.dumps(ROWS[0]))  # one row saved as an object
    assert read_rows(p) == ROWS[:1]


@pytest.mark.parametrize("limit", ["-1", "0"])
def test_limit_below_one_is_refused(capsys, data, tmp_path, no_model, limit):
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", "--limit", limit)
    assert code == 2 and "limit must be a positive number" in said


@pytest.mark.parametrize("content", ["", "[]", "\n\n  \n"])
def test_empty_input_stops_before_the_model(capsys, tmp_path, no_model, content):
    p = tmp_path/("empty.json" if content == "[]" else "empty.jsonl")
    p.write_text(content)
    code, said = score(capsys, "embedded", p, tmp_path/"s.parquet")
    assert code == 2 and "holds no rows" in said


def test_csv_text_stays_text(tmp_path):
    p = tmp_path/"rows.csv"
    p.write_text("instruction,input,output\nWhat is 6 times 7?,0,42\nCount to one.,0,1\n")  # numbers only
    rows = read_rows(p)
    assert [r["output"] for r in rows] == ["42", "1"]
    (tmp_path/"b.csv").write_text("instruction,output\nIs water wet?,True\nIs fire cold?,False\n")
    assert [r["output"] for r in read_rows(tmp_path/"b.csv")] == ["True", "False"]
    prompt, answer = prompt_and_answer(rows[0], "raw")
    assert prompt.endswith("\n\n0") and answer == "42"  # the input "0" is kept


def test_parquet_chat_rows_arrive_as_lists(tmp_path):
    p = tmp_path/"chat.parquet"
    msgs = [[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]]
    pq.write_table(pa.table({"messages": msgs}), p)
    row = read_rows(p)[0]
    assert row["messages"] == msgs[0]
    assert prompt_and_answer(row, "raw")[1] == "Hello!"


def test_lone_surrogate_is_one_rows_status(capsys, tmp_path, tiny_model_folder):
    p = tmp_path/"s.jsonl"
    p.write_text(json.dumps(ROWS[0]) + "\n" + '{"instruction": "Bad \\ud800 text", "output": "x"}\n'
                 + json.dumps(ROWS[2]) + "\n")
    with pytest.raises(SkipSample, match="unpaired surrogate"): prompt_and_answer(read_rows(p)[1])
    out = tmp_path/"scores.parquet"
    code, said = score(capsys, tiny_model_folder, p, out)
    assert code == 0, said
    df = pd.read_parquet(out)
    assert list(df.status) == ["ok", "non_text", "ok"]
    assert df.instruction[1] == "Bad \\ud800 text"  # kept, written as its escape


def test_integer_beyond_int64_does_not_lose_the_table(capsys, tmp_path, tiny_model_folder):
    p = write_jsonl(tmp_path/"big.jsonl", [r | {"id": 2**70 + i} for i, r in enumerate(ROWS)])
    out = tmp_path/"scores.parquet"
    code, said = score(capsys, tiny_model_folder, p, out)
    assert code == 0, said
    assert pd.read_parquet(out).id.tolist() == [str(2**70 + i) for i in range(3)]


def test_csv_output_keeps_a_bare_carriage_return(capsys, tmp_path, tiny_model_folder):
    rows = [ROWS[0], {"instruction": "Two\rparts", "output": "one\rtwo"}, ROWS[2]]
    out = tmp_path/"scores.csv"
    code, said = score(capsys, tiny_model_folder, write_jsonl(tmp_path/"cr.jsonl", rows), out)
    assert code == 0, said
    back = read_rows(out)
    assert len(back) == 3 and back[1]["output"] == "one\rtwo"
    code, said = cli(capsys, "select", out, "-o", tmp_path/"sel.jsonl", "--top", "3", "--rule", "superfiltering")
    eligible = [r["index"] for r in back if r["ifd_ppl"] != "" and float(r["ifd_ppl"]) < 1]
    assert code == 0 and sorted(str(r["index"]) for r in read_rows(tmp_path/"sel.jsonl")) == sorted(eligible)


# ---------------------------------------------------------------- paths and locks

def test_score_never_writes_over_its_input(capsys, data, no_model):
    before = data.read_bytes()
    code, said = cli(capsys, "score", data.parent/"."/data.name, "-o", data.with_suffix(".jsonl"))
    assert code == 2 and "is the input file" in said and data.read_bytes() == before


def test_select_never_writes_over_its_scores(capsys, tmp_path, tiny_model_folder, data):
    out = tmp_path/"scores.jsonl"
    assert score(capsys, tiny_model_folder, data, out)[0] == 0
    before = out.read_bytes()
    code, said = cli(capsys, "select", out, "-o", out, "--top", "1")
    assert code == 2 and "is the input file" in said and out.read_bytes() == before


def test_output_paths_are_checked_before_the_model(capsys, tmp_path, data, no_model):
    (tmp_path/"folder.parquet").mkdir()
    code, said = score(capsys, "embedded", data, tmp_path/"folder.parquet")
    assert code == 2 and "is a folder" in said
    (tmp_path/"file").write_text("x")
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", "--shard-dir", tmp_path/"file")
    assert code == 2 and "is a file, not a folder" in said
    code, said = cli(capsys, "experience", data, "-o", tmp_path/"file")
    assert code == 2 and "is a file, not a folder" in said


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
def test_read_only_output_is_checked_before_the_model(capsys, tmp_path, data, no_model):
    out = tmp_path/"s.csv"
    out.write_text("x")
    out.chmod(0o444)
    code, said = score(capsys, "embedded", data, out)
    assert code == 2 and "cannot be written" in said


def test_a_live_run_holds_its_shard_folder(capsys, tmp_path, data, tiny_model_folder):
    out, shards = tmp_path/"s.parquet", tmp_path/"s.parquet.shards"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        shards.mkdir()
        from ifd_nb.store import FolderLock
        (shards/".lock").write_text(json.dumps(dict(FolderLock(shards).me, pid=other.pid, command="ifd_nb score x")))
        code, said = score(capsys, tiny_model_folder, data, out)
        assert code == 2 and f"in use by process {other.pid}" in said and not out.exists()
    finally:
        other.kill()
        other.wait()
    code, said = score(capsys, tiny_model_folder, data, out)  # its process has ended: the lock is taken over
    assert code == 0 and "has ended" in said and not (shards/".lock").exists()


def test_final_table_is_written_whole_or_not_at_all(capsys, tmp_path, data, tiny_model_folder, monkeypatch):
    out = tmp_path/"s.parquet"
    assert score(capsys, tiny_model_folder, data, out)[0] == 0
    before = out.read_bytes()
    def half(df, path, tmp):
        Path(tmp).write_bytes(b"PAR1 cut short")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("ifd_nb.scores.write_table", half)
    code, said = score(capsys, tiny_model_folder, data, out, "--no-resume")
    assert code == 2 and "--shard-dir" in said and "s.parquet.shards" in said
    assert out.read_bytes() == before and not list(tmp_path.glob(".s.parquet*"))


def test_report_makes_its_folder(capsys, tmp_path, data, tiny_model_folder):
    out = tmp_path/"s.parquet"
    assert score(capsys, tiny_model_folder, data, out)[0] == 0
    code, said = cli(capsys, "report", out, "-o", tmp_path/"new"/"deeper"/"r.html")
    assert code == 0 and (tmp_path/"new"/"deeper"/"r.html").exists()


# ---------------------------------------------------------------- resume keys

def test_new_weights_under_the_same_name_are_not_mixed_with_old_shards(capsys, tmp_path, data):
    from ifd_nb.train import save_model
    from ifd_nb.models import tiny_model, load_tokenizer
    folder, out, tok = tmp_path/"pre", tmp_path/"s.parquet", load_tokenizer("embedded")
    save_model(tiny_model(seed=0), tok, folder)
    assert score(capsys, folder, data, out)[0] == 0
    first = pd.read_parquet(out).ifd
    save_model(tiny_model(seed=1), tok, folder)  # `experience -o pre/` run again: same name, other weights
    code, said = score(capsys, folder, data, out)
    assert code == 2 and "other weights" in said and pd.read_parquet(out).ifd.equals(first)
    code, said = score(capsys, folder, data, out, "--no-resume")
    assert code == 0 and not pd.read_parquet(out).ifd.equals(first)


def test_progress_counts_only_this_runs_rows(capsys, tmp_path, data, tiny_model_folder):
    out = tmp_path/"s.parquet"
    assert score(capsys, tiny_model_folder, data, out)[0] == 0
    code, said = score(capsys, tiny_model_folder, data, out, "--mode", "superfiltering")
    assert code == 0 and "3 rows: 0 already scored, 3 to score" in said
    code, said = score(capsys, tiny_model_folder, data, out)
    assert code == 0 and "3 rows: 3 already scored, 0 to score" in said


# ---------------------------------------------------------------- option checks

@pytest.fixture
def scores_csv(capsys, tmp_path, tiny_model_folder) -> Path:
    "A CSV scores table of 3 rows, one skipped (empty answer)."
    rows = [ROWS[0], {"instruction": "Nothing", "output": " "}, ROWS[2]]
    out = tmp_path/"scores.csv"
    assert score(capsys, tiny_model_folder, write_jsonl(tmp_path/"d.jsonl", rows), out)[0] == 0
    return out


@pytest.mark.parametrize("rule", ["top", "cherry", "superfiltering"])
@pytest.mark.parametrize("size", [("--top", "-2"), ("--top", "0"), ("--rate", "0"), ("--rate", "1.5"),
                                  ("--rate", "-0.1")])
def test_select_sizes_outside_their_range_are_refused(capsys, scores_csv, rule, size):
    code, said = cli(capsys, "select", scores_csv, "-o", scores_csv.with_name("sel.json"), "--rule", rule, *size)
    assert code == 2 and size[0] in said and "selected" not in said


@pytest.mark.parametrize("flag", [("--max-length", "0"), ("--max-length", "-5"), ("--chunk-rows", "0"),
                                  ("--batch-tokens", "0")])
def test_sizes_that_silently_meant_the_default_are_refused(capsys, data, tmp_path, no_model, flag):
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", *flag)
    assert code == 2 and "must be a positive number" in said


@pytest.mark.parametrize("template", ["{instruction} {foo}", "{}", "{instruction} {"])
def test_bad_templates_are_refused_before_the_model(capsys, data, tmp_path, no_model, template):
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", "--template", template)
    assert code == 2 and "template" in said and "Traceback" not in said


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_one_line(capsys, data, tmp_path, no_model):
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", "--device", "cuda")
    assert code == 2 and "no CUDA GPU here" in said


def test_compare_says_when_a_share_keeps_no_row(capsys, scores_csv):
    code, said = cli(capsys, "compare", scores_csv, scores_csv, "--rates", "0.05,1")
    assert code == 0 and "top 0.05 by each: keeps no row" in said and "top 1 by each: 100% kept by both" in said


def test_report_and_plot_read_a_csv_table_with_skipped_rows(capsys, scores_csv, tmp_path):
    assert cli(capsys, "report", scores_csv, "-o", tmp_path/"r.html")[0] == 0
    assert cli(capsys, "plot", scores_csv, "-o", tmp_path/"plots")[0] == 0


def test_report_with_no_scored_row_is_one_line(capsys, scores_csv, tmp_path):
    df = pd.read_csv(scores_csv).assign(status="empty_answer")
    df.to_csv(tmp_path/"none.csv", index=False)
    code, said = cli(capsys, "report", tmp_path/"none.csv", "-o", tmp_path/"r.html")
    assert code == 2 and "no scored row" in said
    (tmp_path/"empty.csv").write_text("")
    code, said = cli(capsys, "plot", tmp_path/"empty.csv", "-o", tmp_path/"p")
    assert code == 2 and "holds no rows" in said


def test_select_names_a_missing_key(capsys, scores_csv):
    code, said = cli(capsys, "select", scores_csv, "-o", scores_csv.with_name("sel.json"), "--top", "1",
                     "--key", "nosuch")
    assert code == 2 and "--key nosuch" in said and "ifd" in said


def test_a_template_a_reference_script_lacks_is_refused_before_the_model(capsys, data, tmp_path, no_model):
    code, said = score(capsys, "embedded", data, tmp_path/"s.parquet", "--mode", "cherry", "--template", "raw")
    assert code == 2 and "cherry-v2 has wiz and vicuna" in said
