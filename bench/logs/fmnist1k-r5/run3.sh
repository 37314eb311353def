#!/bin/bash
# R5 PyTorch seed 2 (2026-12-03 night session), one core
cd /tmp/r5c
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
( $E /usr/bin/python3 /tmp/r5c/fmnist1k_torch.py -t 1 --seeds 2 R5 > torch_s2.jsonl 2> torch_s2.err; echo done > DONE_torch_s2 ) &
wait
