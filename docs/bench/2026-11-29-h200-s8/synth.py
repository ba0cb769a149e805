"""Writes a synthetic ImageFolder (train/ and val/, 10 classes) of 256x256 JPEGs for timing the trainer's loop."""
import os
import sys
from multiprocessing import Pool

import numpy as np
from PIL import Image

ROOT, N_TRAIN, N_VAL = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def write(args):
    split, c, i = args
    rng = np.random.default_rng(hash((split, c, i)) % 2**32)
    small = rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((256, 256), Image.BICUBIC)
    d = os.path.join(ROOT, split, f"c{c}")
    os.makedirs(d, exist_ok=True)
    img.save(os.path.join(d, f"{i}.jpg"), quality=90)


jobs = [(s, c, i) for s, n in (("train", N_TRAIN), ("val", N_VAL)) for c in range(10) for i in range(n)]
with Pool(16) as p:
    p.map(write, jobs, chunksize=64)
print("wrote", len(jobs))
