"""The default mode's template: `auto` renders with the model's chat template and starts the bare pass from its empty
assistant turn (Alpaca with a newline where the tokenizer has no chat template); the template and bare context a run
used are printed and kept in the scores table; `--bare-context` sets the bare pass in the default mode only."""
import copy
import pandas as pd
import pytest
from ifd_nb.cli import main
from ifd_nb.data import ALPACA_PROMPT_NO_INPUT, demo_data_path, generation_prompt, read_rows
from ifd_nb.ifd import encode_sample, pass_settings, score_rows
from ifd_nb.settings import MODE_DEFAULTS


def test_auto_is_the_default_and_renders_the_chat_template(embedded):
    _, tok = embedded
    assert MODE_DEFAULTS["default"][0] == "auto"
    row = {"instruction": "Name a primary colour.", "output": "Red."}
    e = encode_sample(tok, row)
    chat = tok.apply_chat_template([{"role": "user", "content": row["instruction"]}], add_generation_prompt=True,
                                   tokenize=False)
    answer = tok(row["output"], add_special_tokens=False).input_ids
    assert e.cond_ids == tok(chat, add_special_tokens=False).input_ids + answer
    assert tok.decode(e.bare_ids[:e.bare_start]) == generation_prompt(tok) == "<|im_start|>assistant\n"
    assert e.cond_ids[e.cond_start:] == e.bare_ids[e.bare_start:] == answer


def test_auto_without_a_chat_template_is_alpaca_with_a_newline(embedded):
    _, tok = embedded
    plain = copy.deepcopy(tok)
    plain.chat_template = None
    row = {"instruction": "Name a primary colour.", "output": "Red."}
    e = encode_sample(plain, row)
    prompt = ALPACA_PROMPT_NO_INPUT.format(instruction=row["instruction"]) + "\n"
    assert plain.decode(e.cond_ids[:e.cond_start]) == prompt
    assert e.bare_ids[:e.bare_start] == [plain.bos_token_id]
    assert pass_settings(plain)["template"] == "auto: Alpaca, newline after"


def test_a_short_right_answer_is_not_hard_under_auto(embedded):
    "The verbatim Alpaca prompt ends in a colon that the model did not learn to answer after: '7' looks hard there."
    model, tok = embedded
    row = {"instruction": "What is 3 plus 4?", "output": "7"}
    alpaca, auto = (score_rows([row], model, tok, template=t, progress=False)[0]["ifd"] for t in ("alpaca", "auto"))
    assert alpaca > 1 > auto


def test_the_scores_table_keeps_template_and_bare_context(tmp_path, capsys):
    inp = demo_data_path()
    args = ["score", str(inp), "--limit", "4", "-q", "--batch-tokens", "2048"]
    assert main([*args, "-o", str(tmp_path/"auto.parquet")]) == 0
    assert "template auto: the tokenizer's chat template; bare pass from '<|im_start|>assistant\\n'" in \
        capsys.readouterr().out
    assert main([*args, "-o", str(tmp_path/"resp.parquet"), "--bare-context", "### Response:"]) == 0
    assert main([*args, "-o", str(tmp_path/"alpaca.csv"), "--template", "alpaca"]) == 0
    auto, resp = pd.read_parquet(tmp_path/"auto.parquet"), pd.read_parquet(tmp_path/"resp.parquet")
    alpaca = pd.read_csv(tmp_path/"alpaca.csv", keep_default_na=False)
    assert set(auto.template) == {"auto: the tokenizer's chat template"}
    assert set(auto.bare_context) == {"<|im_start|>assistant\n"}
    assert set(resp.bare_context) == {"### Response:"}
    assert list(resp.loss_cond) == pytest.approx(list(auto.loss_cond), abs=1e-6)  # only the bare pass moved
    assert all(abs(resp.loss_bare - auto.loss_bare) > 1e-3)
    assert set(alpaca.template) == {"alpaca"} and set(alpaca.bare_context) == {"<|im_start|>"}


def test_a_column_named_template_in_the_input_is_kept(tmp_path):
    rows = [dict(r, template="mine") for r in read_rows(demo_data_path())[:2]]
    pd.DataFrame(rows).to_json(tmp_path/"in.jsonl", orient="records", lines=True)
    assert main(["score", str(tmp_path/"in.jsonl"), "-o", str(tmp_path/"s.parquet"), "-q"]) == 0
    df = pd.read_parquet(tmp_path/"s.parquet")
    assert list(df.orig_template) == ["mine", "mine"] and df.template.str.startswith("auto").all()


def test_bare_context_is_for_the_default_mode_only(tmp_path, capsys):
    assert main(["score", str(demo_data_path()), "-o", str(tmp_path/"s.parquet"), "--mode", "cherry",
                 "--bare-context", "x"]) == 2
    assert "bare_context is for the default mode" in capsys.readouterr().err
    assert not (tmp_path/"s.parquet").exists()
