"""Your own PyTorch model under descent's views: an LSTM that must remember a sequence's first token.

    python docs/monitor_example.py --out runs/remember     # trains headless (seconds on a CPU)
    descent watch runs/remember                             # loss, gradients, time-gradient heatmap
"""
import argparse

import torch
import torch.nn as nn

from descent import Monitor

ap = argparse.ArgumentParser()
ap.add_argument("--out", default="runs/remember")
ap.add_argument("--steps", type=int, default=1000)
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(1)          # a model this small runs fastest on one thread
V, T = 8, 10                      # 8 tokens; the answer is the first of 10


class Remember(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed, self.lstm, self.head = nn.Embedding(V, 16), nn.LSTM(16, 64, batch_first=True), nn.Linear(64, V)

    def forward(self, x):
        return self.head(self.lstm(self.embed(x))[0][:, -1])


model = Remember()
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
with Monitor(model, args.out, every=10, force=True) as monitor:      # force: a rerun replaces the folder
    for step in range(1, args.steps + 1):
        x = torch.randint(0, V, (32, T))
        loss = nn.functional.cross_entropy(model(x), x[:, 0])
        opt.zero_grad()
        loss.backward()
        monitor.step(loss, opt)           # after backward, before the optimizer's step
        opt.step()
        if step % 100 == 0 or step == args.steps:
            with torch.no_grad():
                x = torch.randint(0, V, (512, T))
                monitor.evaluate({"accuracy": (model(x).argmax(1) == x[:, 0]).float().mean()})
    monitor.checkpoint()
print(f"trained {args.steps} steps; watch it with: descent watch {args.out}")
