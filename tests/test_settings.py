"""One settings object per run: every entry point takes it, each mistake has one message, and the message is written
once in the package."""
import re
from pathlib import Path
import pytest
from ifd_nb.cli import main
from ifd_nb.settings import ScoringSettings, ExperienceSettings

PKG = Path(__file__).resolve().parent.parent/"ifd_nb"
MESSAGES = ["unknown mode", "unknown turn rule", "needs a chat template", "is for the default mode",
            "'s script with the template(s)", "must be a positive number", "percentiles with low <= up",
            "give a {cls.__name__} or its fields", "must lie in [0, 1)", "needs peft"]


def package_texts() -> dict:
    return {p.name: p.read_text() for p in PKG.rglob("*.py") if p.name != "_modidx.py"}


@pytest.mark.parametrize("message", MESSAGES)
def test_each_validation_message_is_written_once(message):
    where = [name for name, text in package_texts().items() for _ in re.finditer(re.escape(message), text)]
    assert len(where) == 1, f"{message!r} written in {where}"


def test_the_message_check_finds_a_copy(tmp_path):
    copy = {"a.py": 'raise ValueError("unknown mode x")', "b.py": 'raise ValueError(f"unknown mode {m}")'}
    assert len([n for n, t in copy.items() for _ in re.finditer(re.escape("unknown mode"), t)]) == 2


@pytest.mark.parametrize("argv,message", [
    (["--mode", "cherry", "--bare-context", "x"], "bare_context is for the default mode"),
    (["--mode", "cherry", "--template", "vicuna"], "cherry-v2 has wiz and vicuna"),
    (["--max-length", "0"], "max_length must be a positive number"),
    (["--template", "Q: {question}"], "{question}"),
])
def test_the_cli_says_the_library_s_message_before_reading_anything(tmp_path, capsys, argv, message):
    missing = tmp_path/"no-such-input.json"  # never read: the settings are refused first
    assert main(["score", str(missing), "-o", str(tmp_path/"s.parquet"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_entry_points_take_the_object_or_its_fields_not_both(embedded):
    from ifd_nb.batch_encode import encode_samples
    from ifd_nb.engine import score_dataset
    from ifd_nb.ifd import encode_sample, score_rows
    model, tok = embedded
    rows = [{"instruction": "Name a colour.", "output": "Blue."}, {"instruction": "Say hi.", "output": "Hello!"}]
    s = ScoringSettings("cherry", max_length=64)
    assert encode_sample(tok, rows[0], s) == encode_sample(tok, rows[0], "cherry", max_length=64)
    assert encode_samples(tok, rows, s) == encode_samples(tok, rows, mode="cherry", max_length=64)
    by_object = score_rows(rows, model, tok, s, progress=False)
    assert by_object == score_rows(rows, model, tok, mode="cherry", max_length=64, progress=False)
    table = score_dataset(rows, model, tok, s, progress=False, verbose=False)
    assert table.ifd.tolist() == pytest.approx([r["ifd"] for r in by_object], abs=1e-6)
    assert set(table["mode"]) == {"cherry"} and set(table["max_length"]) == {64}
    for call in (lambda: score_dataset(rows, model, tok, s, mode="default"), lambda: score_rows(rows, model, tok, s,
                                                                                                  template="alpaca")):
        with pytest.raises(ValueError, match="not both"): call()
    with pytest.raises(TypeError, match="max_lenght"): score_dataset(rows, model, tok, max_lenght=64)


def test_experience_settings_name_each_bad_value():
    for bad, message in ((dict(n_clusters=0), "n_clusters must be a positive number"),
                         (dict(schedule="step"), "'cosine' or 'linear'"), (dict(up_th=101), "percentiles"),
                         (dict(method="best"), "'reference' or 'random'")):
        with pytest.raises(ValueError, match=re.escape(message)): ExperienceSettings(**bad)
