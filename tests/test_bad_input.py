"""Bad input gets a named, counted status or one clear error line; no row is ever dropped."""
import json, os, shutil, subprocess, sys
import pandas as pd
import pytest
from ifd_nb.cli import main
from ifd_nb.ifd import score_rows
from ifd_nb.models import tiny_model, load_tokenizer

BAD = [
    '{"instruction": "Name a colour.", "output": "Blue."}',
    '{"instruction": "No answer here."}',
    '{"output": "An answer without an instruction."}',
    '{"instruction": "Empty answer.", "output": "   "}',
    '{"instruction": 42, "output": "not a string instruction"}',
    '{"instruction": "A list answer.", "output": ["a", "b"]}',
    'this line is not JSON',
    '{"instruction": "' + "very long prompt " * 400 + '", "output": "x"}',
    '{"conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello there!"}]}',
    '{"instruction": "Name a fruit.", "output": "Apple."}',
]
EXPECTED = ["ok", "missing_field", "missing_field", "empty_answer", "non_text", "non_text", "invalid_json",
            "prompt_too_long", "ok", "ok"]


@pytest.fixture(scope="module")
def bad_file(tmp_path_factory):
    p = tmp_path_factory.mktemp("bad")/"bad.jsonl"
    p.write_text("\n".join(BAD) + "\n")
    return p


def test_every_bad_row_gets_a_named_status(bad_file):
    tok = load_tokenizer("embedded")
    recs = score_rows(str(bad_file), tiny_model(), tok, max_length=256, batch_size=4, progress=False)
    assert [r["status"] for r in recs] == EXPECTED


@pytest.mark.parametrize("ext", ["parquet", "jsonl", "csv"])
def test_cli_score_writes_one_row_per_input_row(bad_file, tmp_path, ext):
    out = tmp_path/f"scores.{ext}"
    chunks = ["--chunk-rows", "3"] if ext == "jsonl" else []  # bad rows spread over 4 chunks: each still gets its status
    assert main(["score", str(bad_file), "-o", str(out), "--max-length", "256", "-q", *chunks]) == 0
    df = pd.read_parquet(out) if ext == "parquet" else pd.read_json(out, lines=True) if ext == "jsonl" else pd.read_csv(out)
    assert list(df["index"]) == list(range(len(BAD)))
    assert list(df.status) == EXPECTED
    for c in ["loss_cond", "loss_bare", "ifd", "ifd_ppl", "n_prompt_tokens", "n_answer_tokens", "truncated", "status", "instruction", "output"]:
        assert c in df.columns
    ok = df[df.status == "ok"]
    assert ok.ifd.notna().all() and df[df.status != "ok"].ifd.isna().all()


def test_truncation_is_flagged(tmp_path):
    tok = load_tokenizer("embedded")
    rows = [{"instruction": "Say something.", "output": "word " * 300}]
    rec = score_rows(rows, tiny_model(), tok, max_length=64, progress=False)[0]
    assert rec["status"] == "ok" and rec["truncated"] and rec["n_prompt_tokens"] + rec["n_answer_tokens"] == 64


def _cli(*args, env=None):
    exe = shutil.which("ifd_nb")
    assert exe, "the ifd_nb console script is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_unknown_model_offline_is_one_clear_line(bad_file, tmp_path):
    r = _cli("score", str(bad_file), "-o", str(tmp_path/"x.csv"), "--model", "no-such-org/no-such-model",
             env={"HF_HUB_OFFLINE": "1"})
    assert r.returncode == 2
    assert "ifd_nb: error: cannot load" in r.stderr and "Traceback" not in r.stderr


def test_missing_input_and_bad_output_suffix(tmp_path):
    r = _cli("score", str(tmp_path/"nope.jsonl"), "-o", str(tmp_path/"x.csv"))
    assert r.returncode == 2 and "no such input file" in r.stderr and "Traceback" not in r.stderr
    assert main(["score", str(tmp_path/"nope.jsonl"), "-o", str(tmp_path/"x.xlsx")]) == 2


def test_demo_runs_and_ranks(tmp_path, capsys):
    assert main(["demo", "--limit", "24", "-o", str(tmp_path/"demo.parquet"), "-q"]) == 0
    out = capsys.readouterr().out
    assert "IFD ranking of the demo set" in out and "have IFD >= 1" in out
    assert len(pd.read_parquet(tmp_path/"demo.parquet")) == 24


@pytest.mark.parametrize("flag", ["--chunk-rows", "--batch-tokens"])
def test_sizes_below_one_are_one_clear_error(bad_file, tmp_path, capsys, flag):
    assert main(["score", str(bad_file), "-o", str(tmp_path/"x.csv"), flag, "-2", "-q"]) == 2
    assert "must be a positive number" in capsys.readouterr().err
