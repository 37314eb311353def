#!/bin/bash
cd /tmp/r5
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
$E /tmp/r5/b/b/fmnist1k -t 1 --seeds 0 R5 > libdel_s0.jsonl 2> libdel_s0.err
$E /usr/bin/python3 /tmp/r5/fmnist1k_torch.py -t 1 --seeds 0 R5 > torch_s0.jsonl 2> torch_s0.err
echo done > ALLDONE
