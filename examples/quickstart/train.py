"""Quickstart experiment: a small 1-D CNN, a shuffling multi-worker DataLoader, dropout; on the
GPU when there is one.

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


class Net(nn.Module):
    """Lift 8 features to a 64-long signal, two convolutions with batch norm, classify."""

    def __init__(self) -> None:
        super().__init__()
        self.lift = nn.Linear(8, 64)
        self.conv1 = nn.Conv1d(1, 16, kernel_size=5, padding=2)
        self.norm = nn.BatchNorm1d(16)
        self.conv2 = nn.Conv1d(16, 16, kernel_size=5, padding=2)
        self.drop = nn.Dropout(0.2)
        self.head = nn.Linear(16 * 64, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        signal = torch.relu(self.lift(x)).unsqueeze(1)
        features = torch.relu(self.conv2(torch.relu(self.norm(self.conv1(signal)))))
        return self.head(self.drop(features).flatten(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train, val = load(Path("data/train.csv")), load(Path("data/val.csv"))
    loader = DataLoader(train, batch_size=64, shuffle=True, num_workers=2)
    model = Net().to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()

    step = 0
    with open("metrics.jsonl", "w") as metrics:
        for epoch in range(args.epochs):
            model.train()
            for features, labels in loader:
                features, labels = features.to(device), labels.to(device)
                optimiser.zero_grad()
                loss = loss_fn(model(features), labels)
                loss.backward()
                optimiser.step()
                metrics.write(json.dumps({"step": step, "train_loss": loss.item()}) + "\n")
                step += 1
            model.eval()
            with torch.no_grad():
                features, labels = (t.to(device) for t in val.tensors)
                logits = model(features)
                val_loss = loss_fn(logits, labels).item()
                accuracy = (logits.argmax(1) == labels).float().mean().item()
            metrics.write(
                json.dumps({"step": step, "val_loss": val_loss, "val_acc": accuracy}) + "\n"
            )
            print(f"epoch {epoch}: val_loss={val_loss:.6f} val_acc={accuracy:.4f}", flush=True)

    Path("checkpoints").mkdir(exist_ok=True)
    torch.save(model.state_dict(), "checkpoints/model.pt")


if __name__ == "__main__":
    main()
