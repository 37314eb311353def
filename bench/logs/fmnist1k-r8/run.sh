#!/bin/bash
# R8 chain on one core: libdel seed 0, PyTorch seed 0, libdel seed 1, PyTorch seed 1
cd /tmp/r8
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
for s in 0 1; do
  $E /tmp/r8/b/b/fmnist1k -t 1 --seeds $s R8 > libdel_s$s.jsonl 2> libdel_s$s.err
  $E /usr/bin/python3 /tmp/r8/fmnist1k_torch.py -t 1 --seeds $s R8 > torch_s$s.jsonl 2> torch_s$s.err
done
echo done > ALLDONE
