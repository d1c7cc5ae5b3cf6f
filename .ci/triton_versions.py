"""Compile ifd_nb's kernels with other Triton versions, for several GPU architectures, on a machine without a GPU.

    python .ci/triton_versions.py 3.0.0 3.3.1 3.6.0        # downloads each wheel once into /tmp/triton-<version>

Each (version, architecture, kernel) compiles in its own process: Triton is put first on sys.path, its active driver
is replaced by a stand-in that reports the target architecture, and `kernel.warmup` compiles exactly what a launch
with those arguments would (16-byte-aligned tensors, sizes divisible by 16 marked as such), without launching.
Prints one line per version and architecture: OK or the error, per kernel form. Not run by CI (it downloads ~650 MB
per version); its findings are in nbs/03_kernels.ipynb.
"""
import os, subprocess, sys

JOBS = ["k2 default", "k2 bias+softcap fp32", "k2 flatten", "merge", "k1"]
ARCHS = [90, 80, 75]

CHILD = r'''
import sys, torch, triton
from triton.backends.compiler import GPUTarget
from ifd_nb import kernels as K
arch, name = int(sys.argv[1]), sys.argv[2]
class StandIn:  # the one thing a warm-up asks the driver: which device, stream and target
    def get_current_device(self): return 0
    def get_current_stream(self, device=None): return 0
    def get_current_target(self): return GPUTarget("cuda", arch, 32)
triton.runtime.driver.set_active(StandIn())
cap = (arch // 10, arch % 10)
lo = torch.float16 if arch < 80 else torch.bfloat16  # no bf16 before Ampere
jobs = {  # launch descriptions from the package itself (pure Python: the same with every Triton)
    "k2 default": K._k2_job(cap, K.K2_TILES[0], lo, 1536, 151936),
    "k2 bias+softcap fp32": K._k2_job(cap, (64, 128, 64, 4, 3), torch.float32, 768, 50257, bias=True, softcap=True),
    "k2 flatten": K._k2_job(cap, K.K2_TILES[0], lo, 1536, 151936, flatten=True),
    "merge": K._merge_job(cap, lo, True),
    "k1": K._k1_job(cap, lo, 151936),
}
name, _, args, num_warps, num_stages, consts, _ = jobs[name]
getattr(K, name).warmup(*args, grid=(1,), num_warps=num_warps, num_stages=num_stages, **dict(consts))
print("OK")
'''


def main(versions):
    for v in versions:
        target = f"/tmp/triton-{v}"
        if not os.path.isdir(target):
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", target, f"triton=={v}"], check=True)
        env = {k: x for k, x in os.environ.items() if k != "TRITON_INTERPRET"} | {"PYTHONPATH": target}
        for arch in ARCHS:
            res = []
            for name in JOBS:
                r = subprocess.run([sys.executable, "-c", CHILD, str(arch), name], capture_output=True, text=True, env=env)
                ok = r.returncode == 0 and r.stdout.strip().endswith("OK")
                err = [l for l in r.stderr.splitlines() if "Error" in l or "ERROR" in l]
                res.append(f"{name}: " + ("OK" if ok else "FAIL (" + (err[-1] if err else f"exit {r.returncode}")[:90] + ")"))
            print(f"triton {v} sm_{arch}: " + "; ".join(res), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["3.0.0", "3.3.1", "3.6.0", "3.9.0"])
