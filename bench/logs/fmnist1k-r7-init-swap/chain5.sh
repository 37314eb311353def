#!/bin/bash
# full R7 (probe, finetune, lwf) seeds 4-7: $1 = list of "side:seed"
source /tmp/r7logs/env.sh
cd /tmp/r7wt
L=/tmp/r7logs
for job in $1; do
  side=${job%%:*}; s=${job##*:}
  if [ $side = libdel ]; then
    run1 build/bench/fmnist1k -t 1 --seeds $s --models /tmp/r7models R7 > $L/full-libdel-s$s.jsonl 2> $L/full-libdel-s$s.err
  else
    run1 /usr/bin/python3 bench/fmnist1k_torch.py -t 1 --seeds $s --models /tmp/r7models-torchfull R7 > $L/full-torch-s$s.jsonl 2> $L/full-torch-s$s.err
  fi
done
