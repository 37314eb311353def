#!/bin/bash
# PyTorch's own R7 probe, seeds 4-7 (two cores: $1 = "4 6" or "5 7")
source /tmp/r7logs/env.sh
cd /tmp/r7wt
L=/tmp/r7logs
for s in $1; do
  run1 /usr/bin/python3 bench/r7_cross.py --seed $s --init torch --tag base > $L/torch-base-s$s.jsonl 2> $L/torch-base-s$s.err
done
