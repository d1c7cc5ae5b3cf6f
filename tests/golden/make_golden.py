"""Writes the saved scores that `tests/test_scores_unchanged.py` compares against: the demo set, the conversations
(every turn, `weighted`) and, where `../shared/data` is present, the first 100 rows of the paper's Alpaca subset,
scored by the engine in each mode with the embedded model in float32, with the resume key of every row.

The keys were recomputed once with the model named "embedded" (they had hashed this machine's cache path), by the
code before the move and by the code after it, which agreed on every row; and once more when a key came to hash only
the fields a score reads and the chat template's text (`--keys`: every score is first checked equal to the saved one,
then only the keys are written).
Run it only to record the scores of a deliberate change of the computation, and say why in the commit:
`python tests/golden/make_golden.py`. Real rows are saved as their keys and scores only, never their text."""
import sys
import tempfile
from pathlib import Path
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent
SCORE_COLUMNS = ["index", "loss_cond", "loss_bare", "ifd", "ifd_ppl", "n_prompt_tokens", "n_answer_tokens", "truncated",
                 "context_truncated", "status", "mode", "template", "bare_context", "max_length"]
CASES = [("demo", "default", None), ("demo", "cherry", None), ("demo", "cherry-v2", None),
         ("demo", "superfiltering", None), ("chat", "default", "weighted"), ("alpaca100", "default", None),
         ("alpaca100", "cherry", None), ("alpaca100", "superfiltering", None)]


def case_rows(data: str):
    "The rows of a case: the bundled demo or chat set, or the first 100 Alpaca rows (None where they are absent)."
    from ifd_nb.data import chat_demo_path, demo_data_path, read_rows, shared_data_path
    if data == "demo": return read_rows(demo_data_path())
    if data == "chat": return read_rows(chat_demo_path())
    path = shared_data_path("alpaca_cherry_5pct.json")
    return read_rows(path, limit=100) if path else None


def score_case(model, tok, rows, mode: str, turns=None) -> tuple[pd.DataFrame, list[str]]:
    "The engine's scores of `rows` in `mode`, and the sorted resume keys its shard folder holds."
    from ifd_nb.engine import score_dataset
    from ifd_nb.store import ShardStore
    name = model.config._name_or_path  # a key hashes the model's name: here the embedded model's cache path
    model.config._name_or_path = "embedded"  # the name it is loaded by, the same on every machine
    try:
        with tempfile.TemporaryDirectory() as d:
            out = Path(d)/"scores.parquet"
            df = score_dataset(rows, model, tok, mode=mode, turns=turns, output=out, progress=False, verbose=False)
            keys = sorted(ShardStore(Path(str(out) + ".shards")).keys())
    finally: model.config._name_or_path = name
    return df[[c for c in SCORE_COLUMNS if c in df]], keys


def same_scores(df: pd.DataFrame, saved: pd.DataFrame):
    "An AssertionError unless `df` holds the saved scores: floats to 1e-6, everything else exactly."
    import numpy as np
    assert list(df.columns) == list(saved.columns)
    for c in saved.columns:
        if c in ("loss_cond", "loss_bare", "ifd", "ifd_ppl"):
            np.testing.assert_allclose(df[c].to_numpy(float), saved[c].to_numpy(float), atol=1e-6, rtol=0)
        else: assert df[c].tolist() == saved[c].tolist(), c


def main(keys_only: bool = False):
    from ifd_nb.models import load_model
    model, tok = load_model("embedded", device="cpu", dtype=torch.float32)
    for data, mode, turns in CASES:
        rows = case_rows(data)
        if rows is None:
            print(f"{data}: ../shared/data is not here, skipped"); continue
        df, keys = score_case(model, tok, rows, mode, turns)
        name = f"{data}_{mode}" + (f"_{turns}" if turns else "")
        if keys_only: same_scores(df, pd.read_parquet(HERE/f"{name}.parquet"))  # the scores stay the saved ones
        else: df.to_parquet(HERE/f"{name}.parquet", index=False)
        (HERE/f"{name}.keys").write_text("\n".join(keys) + "\n")
        print(name, len(df), "rows", df.status.value_counts().to_dict())


if __name__ == "__main__": main(keys_only="--keys" in sys.argv)
