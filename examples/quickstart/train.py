"""Quickstart experiment: a small classifier, a shuffling multi-worker DataLoader, dropout.

Plain PyTorch with no toolkit imports: `toolkit run` makes it reproducible without code changes.
"""

import argparse
import csv
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def load(path: Path) -> TensorDataset:
    with path.open() as handle:
        rows = list(csv.reader(handle))[1:]
    features = torch.tensor([[float(v) for v in row[:-1]] for row in rows])
    labels = torch.tensor([int(row[-1]) for row in rows])
    return TensorDataset(features, labels)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()

    train, val = load(Path("data/train.csv")), load(Path("data/val.csv"))
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2)
    model = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 3))
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss()

    step = 0
    with open("metrics.jsonl", "w") as metrics:
        for epoch in range(args.epochs):
            model.train()
            for features, labels in loader:
                optimiser.zero_grad()
                loss = loss_fn(model(features), labels)
                loss.backward()
                optimiser.step()
                metrics.write(json.dumps({"step": step, "train_loss": loss.item()}) + "\n")
                step += 1
            model.eval()
            with torch.no_grad():
                features, labels = val.tensors
                logits = model(features)
                val_loss = loss_fn(logits, labels).item()
                accuracy = (logits.argmax(1) == labels).float().mean().item()
            metrics.write(json.dumps({"step": step, "val_loss": val_loss, "val_acc": accuracy}) + "\n")
            print(f"epoch {epoch}: val_loss={val_loss:.6f} val_acc={accuracy:.4f}", flush=True)

    Path("checkpoints").mkdir(exist_ok=True)
    torch.save(model.state_dict(), "checkpoints/model.pt")


if __name__ == "__main__":
    main()
