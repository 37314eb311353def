#!/bin/bash
# R4 chain on one core: libdel seeds 1 2 then PyTorch seeds 0 1 2
cd /tmp/r4
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
for s in 1 2; do
  $E /tmp/r4/b/b/fmnist1k -t 1 --seeds $s R4 > libdel_s$s.jsonl 2> libdel_s$s.err
done
for s in 0 1 2; do
  $E /usr/bin/python3 /tmp/r4/fmnist1k_torch.py -t 1 --seeds $s R4 > torch_s$s.jsonl 2> torch_s$s.err
done
echo done > ALLDONE
