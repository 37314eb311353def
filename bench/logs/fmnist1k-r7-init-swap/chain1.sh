#!/bin/bash
source /tmp/r7logs/env.sh
cd /tmp/r7wt
L=/tmp/r7logs
R7_PROBE_ONLY=1 R7_SAVE_INIT=/tmp/r7models/libdel-init-seed2.delm run1 build/bench/fmnist1k -t 1 --seeds 2 --models /tmp/r7models R7 > $L/libdel-base-s2.jsonl 2> $L/libdel-base-s2.err
for s in 0 2; do
  R7_PROBE_ONLY=1 R7_INIT=/tmp/r7models/torch-init-seed$s.delm run1 build/bench/fmnist1k -t 1 --seeds $s --models /tmp/r7models-tinit R7 > $L/libdel-torchinit-s$s.jsonl 2> $L/libdel-torchinit-s$s.err
done
for s in 0 2; do
  run1 /usr/bin/python3 bench/r7_cross.py --seed $s --init /tmp/r7models/libdel-init-seed$s.delm --tag linit > $L/torch-libdelinit-s$s.jsonl 2> $L/torch-libdelinit-s$s.err
done
run1 /usr/bin/python3 bench/r7_cross.py --seed 0 --init torch --tag base > $L/torch-base-s0.jsonl 2> $L/torch-base-s0.err
echo done > $L/chain1.done
