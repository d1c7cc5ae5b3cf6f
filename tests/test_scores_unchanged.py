"""Moving code between notebooks and modules changes no score: the engine's tables in every mode equal the ones saved
in `tests/golden/` (written by `tests/golden/make_golden.py` before the move) to 1e-6, and every row keeps its resume
key (as last recorded, see `make_golden.py`), so shard folders written before still resume."""
import sys
from pathlib import Path
import pandas as pd
import pytest

GOLDEN = Path(__file__).resolve().parent/"golden"
sys.path.insert(0, str(GOLDEN))
from make_golden import CASES, case_rows, same_scores, score_case  # noqa: E402

pytestmark = pytest.mark.slow  # the embedded model over the saved cases: minutes


@pytest.mark.parametrize("data,mode,turns", CASES, ids=[f"{d}-{m}" + (f"-{t}" if t else "") for d, m, t in CASES])
def test_scores_and_keys_equal_the_saved_ones(embedded, data, mode, turns):
    name = f"{data}_{mode}" + (f"_{turns}" if turns else "")
    rows = case_rows(data)
    if rows is None: pytest.skip("../shared/data is not here")
    saved = pd.read_parquet(GOLDEN/f"{name}.parquet")
    df, keys = score_case(*embedded, rows, mode, turns)
    assert keys == (GOLDEN/f"{name}.keys").read_text().split(), "resume keys changed: old shard folders would not resume"
    same_scores(df, saved)

