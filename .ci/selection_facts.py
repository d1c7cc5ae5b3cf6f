"""Diversity-aware selection and the brief experience at scale, on CPU: facility location (06) plain against lazy
greedy on real prompt embeddings, the lazy greedy at 30,000 candidates, and scikit-learn's KMeans at the sizes the
brief experience's pool bounds (08).

    python .ci/selection_facts.py [SUFFIX]   # ~10 minutes on 2 cores; writes nbs/bench_results/cpu_selection_<date>[_SUFFIX].json

The embeddings are the 3,111 Alpaca 5% prompts embedded by the embedded SmolLM2-135M-Instruct (`instruction_features`,
D = 576). The 30,000 candidates are those embeddings drawn again with 5% Gaussian noise (there is no larger real set
here). The KMeans inputs are clustered random points of the same width (300 centres), as 08's prose says.
"""
import datetime, json, platform, resource, sys, time
from pathlib import Path
import numpy as np
import torch
from sklearn.cluster import KMeans
from ifd_nb.data import read_rows, shared_data_path
from ifd_nb.engine import cpu_facts
from ifd_nb.experience import instruction_features
from ifd_nb.models import load_model
from ifd_nb.select import facility_location_greedy, facility_location_reference


def timed(fn, *a):
    t = time.perf_counter(); out = fn(*a); return out, time.perf_counter() - t


def peak_mb() -> int: return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main(suffix: str = ""):
    rows = read_rows(shared_data_path())
    model, tok = load_model("embedded", device="cpu")
    emb, t_emb = timed(lambda: instruction_features(model, tok, rows, batch_size=32)[0])
    del model
    x = emb.astype(np.float64); xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    res = dict(date=str(datetime.date.today()), machine=platform.machine(), cpu_count=torch.get_num_threads(), torch=torch.__version__,
               rows=len(rows), dim=int(emb.shape[1]), embed_s=round(t_emb, 1), mean_cosine=float((xn @ xn.T).mean()), facility=[], kmeans=[])
    for n in (100, 311):
        a, t_plain = timed(facility_location_reference, x, n)
        b, t_lazy = timed(facility_location_greedy, x, n)
        same = next((k for k in range(n) if a[k] != b[k]), n)
        res["facility"].append(dict(candidates=len(x), picks=n, plain_s=round(t_plain, 2), lazy_s=round(t_lazy, 2), same_first_picks=same))
        print(res["facility"][-1], flush=True)
    rng = np.random.default_rng(0)
    big = (emb[rng.integers(0, len(emb), 30000)] + rng.normal(0, 0.05 * emb.std(), (30000, emb.shape[1]))).astype(np.float32)
    _, t_big = timed(facility_location_greedy, big, 1000)
    res["facility"].append(dict(candidates=30000, picks=1000, plain_s=None, lazy_s=round(t_big, 1), peak_mb=peak_mb(),
                                plain_matrix_gb=round(30000**2 * 8 / 1e9, 1)))
    print(res["facility"][-1], flush=True)
    centres = rng.normal(0, 1, (300, emb.shape[1])).astype(np.float32)
    for n in (20000, 100000):
        pts = centres[rng.integers(0, 300, n)] + rng.normal(0, 0.8, (n, emb.shape[1])).astype(np.float32)
        _, t = timed(lambda: KMeans(n_clusters=100, random_state=0, n_init=10).fit_predict(np.asarray(pts, np.float64)))
        res["kmeans"].append(dict(rows=n, dim=int(emb.shape[1]), clusters=100, n_init=10, seconds=round(t, 1), peak_mb=peak_mb()))
        print(res["kmeans"][-1], flush=True)
    res.update(cpu_facts())
    out = Path(__file__).resolve().parents[1]/"nbs"/"bench_results"/f"cpu_selection_{res['date']}{'_' + suffix if suffix else ''}.json"
    out.write_text(json.dumps(res, indent=1)); print("wrote", out)


if __name__ == "__main__": main(*sys.argv[1:])
