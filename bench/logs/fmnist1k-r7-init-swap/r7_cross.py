#!/usr/bin/python3
"""R7 experiment (throw-away): PyTorch pre-training + linear probe, as
fmnist1k_torch.py's run_transfer (probe part only), from a chosen initial
model: torch's own (torch.manual_seed(seed)) or a libdel .delm's weights.
Also exports torch's initial weights to a .delm (for libdel's R7_INIT)."""
import argparse, os, sys, time, json
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bindings", "python"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import numpy as np
import torch
import fmnist1k_torch as R
from torch_common import fmnist_cnn, set_threads, log


def to_flat(model):
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy()


def from_flat(model, flat):
    off = 0
    with torch.no_grad():
        for p in model.parameters():
            n = p.numel()
            p.copy_(torch.from_numpy(flat[off:off + n].copy()).reshape(p.shape))
            off += n
    assert off == len(flat), (off, len(flat))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--init", default="torch", help="torch or a .delm path")
    ap.add_argument("--export-init", default="", help="write torch's seed init as .delm here and exit")
    ap.add_argument("--models", default="/tmp/r7models")
    ap.add_argument("--tag", default="x")
    a = ap.parse_args()
    set_threads(1)
    seed = a.seed
    if a.export_init:
        import libdel
        torch.manual_seed(seed)
        tm = fmnist_cnn(5)
        m = libdel.Model.preset("fmnist-cnn", 1, 28, 28, 5)
        m.init(seed)
        flat = to_flat(tm)
        assert len(flat) == m.num_params, (len(flat), m.num_params)
        np.frombuffer(m.params, dtype=np.float32)[:] = flat
        m.save(a.export_init)
        log("exported torch seed %d init (%d params) to %s" % (seed, len(flat), a.export_init))
        return 0
    data = R.load_data("/usr/share/datasets/fashion-mnist")
    full = data["full"]()
    old_x, old_y = R.select_classes(full["x"], full["y"], 0)
    new_x, new_y = R.select_classes(data["lx"], data["ly"], 5)
    old_tx, old_ty = R.select_classes(data["tx"], data["ty"], 0)
    new_tx, new_ty = R.select_classes(data["tx"], data["ty"], 5)
    t = {"new_x": new_x, "new_y": new_y, "old_tx": old_tx, "old_ty": old_ty, "new_tx": new_tx, "new_ty": new_ty}

    def make_model():
        m = fmnist_cnn(5)  # under torch.manual_seed(seed) (train_and_save)
        if a.init != "torch":
            import libdel
            src = libdel.Model.load(a.init)
            from_flat(m, np.frombuffer(src.params, dtype=np.float32).copy())
            log("initial weights from %s" % a.init)
        return m

    path = os.path.join(a.models, "R7-torch-%s-seed%d.pt" % (a.tag, seed))
    res = [R.train_and_save(make_model, old_x, old_y, old_tx, old_ty, 1500, seed, path, False,
                            "pretrained_old", warmup=100)]
    res += R.transfer_once("probe", t, path, 1000, 200, seed)
    for part, acc, secs, steps, _ in res:
        print(json.dumps({"recipe": "R7", "part": part, "seed": seed, "init": a.init, "reference_acc": round(acc, 4),
                          "reference_s": round(secs, 1)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
