#!/bin/bash
source /tmp/r7logs/env.sh
cd /tmp/r7wt
L=/tmp/r7logs
for s in 6 1 7 3; do
  R7_PROBE_ONLY=1 R7_INIT=/tmp/r7models/torch-init-seed$s.delm run1 build/bench/fmnist1k -t 1 --seeds $s --models /tmp/r7models-tinit R7 > $L/libdel-torchinit-s$s.jsonl 2> $L/libdel-torchinit-s$s.err
  [ $s = 6 -o $s = 7 ] && R7_PROBE_ONLY=1 run1 build/bench/fmnist1k -t 1 --seeds $s --models /tmp/r7models R7 > $L/libdel-base-s$s.jsonl 2> $L/libdel-base-s$s.err
done
echo done > $L/chain3.done
