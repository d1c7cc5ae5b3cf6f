"""Shared fixtures. Triton kernels run through the interpreter on machines without a GPU."""
import os
import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")  # must precede the first `import triton`
torch.set_num_threads(max(1, min(torch.get_num_threads(), os.cpu_count() or 1)))


@pytest.fixture(scope="session")
def embedded():
    "The embedded SmolLM2-135M-Instruct on CPU in float32: (model, tokenizer)."
    from ifd_nb.models import load_model
    return load_model("embedded", device="cpu", dtype=torch.float32)


@pytest.fixture(scope="session")
def alpaca_rows():
    "Rows of the paper's Alpaca 5% subset from ../shared/data; the test is skipped where it is absent."
    from ifd_nb.data import shared_data_path, read_rows
    p = shared_data_path("alpaca_cherry_5pct.json")
    if p is None: pytest.skip("../shared/data/alpaca_cherry_5pct.json is not here")
    return read_rows(p)


@pytest.fixture(scope="session")
def short_alpaca_rows(alpaca_rows):
    """The rows of the Alpaca subset whose text (instruction, input and output) is at most 1,200 characters: tests
    that sample real rows afresh on every run draw from these, so that their cost does not depend on the draw."""
    size = lambda r: sum(len(str(r.get(k) or "")) for k in ("instruction", "input", "output"))
    return [r for r in alpaca_rows if size(r) <= 1200]


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory):
    "A tiny random Llama with the embedded tokenizer, saved as a model folder (a stand-in for a hub id)."
    from ifd_nb.train import save_model
    from ifd_nb.models import tiny_model, load_tokenizer
    return save_model(tiny_model(), load_tokenizer("embedded"), tmp_path_factory.mktemp("tiny_model"))


def pytest_configure(config):
    "The test lanes: `pytest -m 'not slow'` is the fast lane (unit and kernel tests on small shapes); all is CI's."
    config.addinivalue_line("markers", "slow: minutes, not seconds: lessons, docs, compiles for every card, real "
                                       "models, several processes (the fast lane skips them)")
