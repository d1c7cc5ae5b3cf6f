"""Every kernel compiles for every card in `CARDS`, specialized as a launch specializes it, without a GPU.

The interpreter tests prove the kernels compute the right numbers; these prove Triton's compiler accepts them for each
architecture a user may have (Colab's T4 and L4 included) and check what the compiled code uses. A Triton upgrade
that breaks a kernel on one architecture, or makes kernel 1 spill registers, fails here before it reaches a GPU.
All compiles run in one batch (one child process under the interpreter), about a minute on 2 cores.
"""
import pytest
import torch

from ifd_nb import kernels
from ifd_nb.kernels import HAS_TRITON, K2_TILES, choose_tile, programs_per_sm
from ifd_nb.compile_facts import CARDS
from ifd_nb import compile_facts

pytestmark = pytest.mark.skipif(not HAS_TRITON, reason="needs Triton")
f32, bf16, f16 = torch.float32, torch.bfloat16, torch.float16
NEWER = [c for c in CARDS if c >= (8, 0)]
K2_CASES = [(bf16, 1536, 151936, {}), (f16, 768, 50257, dict(bias=True, softcap=True)), (f32, 4096, 32000, {})]


def _dtypes(cap):
    return (f16, f32) if cap < (8, 0) else (bf16, f16, f32)  # no bf16 before Ampere


K1 = [kernels.kernel1_job(c, dt, V) for c in CARDS for dt in _dtypes(c) for V in (151936, 50257)]  # V divisible by 16 or not
MERGE = [kernels.merge_job(c, dt, b) for c in CARDS for dt in _dtypes(c) for b in (False, True)]
K2 = [kernels.kernel2_job(c, t, dt, D, V, **fl) for c in NEWER for dt, D, V, fl in K2_CASES for t in K2_TILES]
K2 += [kernels.kernel2_job((7, 5), t, f16, 1536, 151936) for t in K2_TILES]


@pytest.fixture(scope="module")
def compiled():
    "Resources of every launch above, compiled in one batch (remembered in `compile_facts._RESOURCES`)."
    return dict(zip(K1 + MERGE + K2, compile_facts.resources_many(K1 + MERGE + K2)))


def test_kernel1_and_merge_compile_everywhere_without_spills(compiled):
    for job in K1 + MERGE:
        r = compiled[job]
        assert "error" not in r, (job[:2], r)
        assert r["spill"] == 0 and r["shared"] <= CARDS[job[1]][1], (job, r)


@pytest.mark.parametrize("cap", NEWER)
def test_kernel2_tile_choice(cap, compiled):
    limits = CARDS[cap][1:]
    for dt, D, V, flags in K2_CASES:
        tile, r = choose_tile(cap, limits, dt, D, V, **flags)  # from the batch: no compiles here
        assert programs_per_sm(r, tile[3], limits) >= 1 and r["pipelined"], (cap, dt, r)
        if dt == f32:  # exact float32 dots: no tensor cores, so `auto` takes the chunked path (cuBLAS + kernel 1)
            assert r["tensor_cores"] == "none", (cap, r)
        else:
            assert r["tensor_cores"] != "none", (cap, dt, r)
            assert r["spill"] == 0, (cap, dt, tile, r)


def test_t4_dot_runs_on_cuda_cores(compiled):
    "The fact behind dispatch sending the T4 to the chunked path: Triton gives kernel 2's dot no tensor cores there."
    for t in K2_TILES:
        r = compiled[kernels.kernel2_job((7, 5), t, f16, 1536, 151936)]
        assert "error" not in r and r["tensor_cores"] == "none" and r["spill"] > 0, r
