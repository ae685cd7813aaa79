"""Compute alone at scale 0.1 with the finaliser replaced by the raw window reads: what the finaliser costs.

    FIN=raw python notes/20-finaliser-measure.py   # window reads only (no snapshot_columns)
    FIN=full python notes/20-finaliser-measure.py  # as featurebank computes
Run 1 of each reuses run 0's shuffle (same DataFrame), so it times the stages after the exchange.
"""
import os, sys, runpy
sys.path[:0] = ["lib", "tools", "."]
from featurebank.engine import aggregate as A
mode = os.environ.get("FIN", "full")
if mode == "raw":
    def raw(rolled, plan, slots):
        return rolled
    A.snapshot_columns = raw
sys.argv = ["m", "--scale", "0.1", "--repeats", "2"]
runpy.run_path("notes/20-compute-measure.py", run_name="__main__")
