"""Turn a chapter into a plain Python script with its parameters overridden, for a machine without Jupyter (the GPU
machine of this workplace has torch but no papermill or IPython).

    python dev/gpu/nb2py.py book/vimae.ipynb out.py -f profiles/paper/vimae.yaml -p epochs 2 -p fig1_epochs 2

Each parameter override goes after the parameters cell, as papermill injects it; ``display`` prints.
"""
import argparse
import ast
import json

import yaml

ap = argparse.ArgumentParser()
ap.add_argument("notebook")
ap.add_argument("script")
ap.add_argument("-f", "--file", action="append", default=[], help="a YAML file of parameters")
ap.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"))
a = ap.parse_args()
params = {}
for f in a.file:
    params.update(yaml.safe_load(open(f)) or {})
for k, v in a.param:
    params[k] = yaml.safe_load(v)
nb = json.load(open(a.notebook))
out = ["import pandas as _pd\n_pd.set_option('display.width', 200)\n_pd.set_option('display.max_columns', 30)\n"
       "try:\n    from IPython.display import display\nexcept ImportError:\n    display = print\n"]
for c in nb["cells"]:
    if c["cell_type"] != "code":
        continue
    src = "".join(c["source"])
    body = ast.parse(src).body
    if body and isinstance(body[-1], ast.Expr):  # Jupyter shows a cell's last expression: so does the script
        lines = src.splitlines()
        last = body[-1]
        expr = ast.get_source_segment(src, last)
        src = "\n".join(lines[:last.lineno - 1] + [f"display({expr})"])
    out.append(src)
    if "parameters" in c["metadata"].get("tags", []):
        out.append("\n".join(f"{k} = {v!r}" for k, v in params.items()))
        names = {t.id for n in ast.parse(src).body if isinstance(n, ast.AnnAssign) for t in [n.target]}
        unknown = set(params) - names
        if unknown:
            raise SystemExit(f"unknown parameters: {sorted(unknown)}")
open(a.script, "w").write("\n\n".join(out) + "\n")
