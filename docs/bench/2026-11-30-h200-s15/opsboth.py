"""Session 15: the operator benchmark at the given shapes, graphed and then eager, in one process (fla autotunes once):
prints both tables and writes the records. Args: out.json shape..."""
import json
import os
import sys

sys.path.insert(0, os.getcwd())
from comba_vision import bench  # noqa: E402

out, shapes = sys.argv[1], [tuple(int(x) for x in s.split(",")) for s in sys.argv[2:]]
env = bench.environment()
print(json.dumps(env), flush=True)
recs = {}
for graphed in (True, False):
    recs["graphed" if graphed else "eager"] = r = bench.bench_ops(
        shapes, ["comba", "comba_bidir", "fla_comba", "sdpa"], reps=20, cuda_graph=graphed)
    print("graphed" if graphed else "eager", flush=True)
    print(bench.ops_table(r), flush=True)
    with open(out, "w") as f:
        json.dump(dict(environment=env, **recs), f, indent=1)
