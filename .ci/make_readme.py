"""README.md from nbs/index.ipynb: markdown cells, code cells as ```python blocks (directives dropped)."""
import json, re
from pathlib import Path
ROOT = Path(__file__).resolve().parent.parent
nb = json.load(open(ROOT/'nbs'/'index.ipynb'))
parts = []
for c in nb["cells"]:
    src = "".join(c["source"]).strip("\n")
    if c["cell_type"] == "markdown": parts.append(src)
    else:
        code = "\n".join(l for l in src.split("\n") if not l.startswith("#|")).strip("\n")
        if code: parts.append("```python\n" + code + "\n```")
md = "\n\n".join(parts)
md = re.sub(r"^(# .*)\n> (.*)$", r"\1\n\n\2", md, count=1, flags=re.M)
open(ROOT/'README.md', 'w').write(md + "\n")
