"""Regenerate the quickstart's committed data set (three noisy Gaussian blobs in 8 dimensions)."""

import csv
import random
from pathlib import Path


def main() -> None:
    rng = random.Random(1)
    centres = [[rng.uniform(-1, 1) for _ in range(8)] for _ in range(3)]
    here = Path(__file__).parent / "data"
    for name, rows in (("train.csv", 2048), ("val.csv", 512)):
        with (here / name).open("w", newline="") as handle:
            out = csv.writer(handle)
            out.writerow([f"x{i}" for i in range(8)] + ["label"])
            for _ in range(rows):
                label = rng.randrange(3)
                out.writerow([f"{c + rng.gauss(0, 0.9):.5f}" for c in centres[label]] + [label])


if __name__ == "__main__":
    main()
