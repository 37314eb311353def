#!/bin/bash
# PyTorch R8 seed 1 (the previous chain was killed with the session)
cd /tmp/r8
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
$E /usr/bin/python3 /tmp/r8/fmnist1k_torch.py -t 1 --seeds 1 R8 > torch_s1.jsonl 2> torch_s1.err
echo done > TORCH1DONE
