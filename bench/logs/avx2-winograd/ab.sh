#!/bin/bash
# 5 rounds, builds and levels interleaved; 1 thread, batch 128
for r in 1 2 3 4 5; do
  for m in fmnist-cnn resnet20; do
    if [ $m = resnet20 ]; then B="5 2"; else B="5 4"; fi
    for isa in avx2 avx512; do
      for b in before new; do
        echo "r$r $b $(DEL_CPU_ISA=$isa ./steptime_$b $m $B)"
      done
    done
  done
done
