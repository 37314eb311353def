#!/bin/bash
# R5 seeds 1-2 (2026-12-03 evening session): three runs on 2 cores, started together
cd /tmp/r5b
E="env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONDONTWRITEBYTECODE=1 GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967296:glibc.malloc.trim_threshold=4294967296 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1"
( $E /tmp/r5b/b/b/fmnist1k -t 1 --seeds 1 R5 > libdel_s1.jsonl 2> libdel_s1.err; echo done > DONE_libdel_s1 ) &
( $E /tmp/r5b/b/b/fmnist1k -t 1 --seeds 2 R5 > libdel_s2.jsonl 2> libdel_s2.err; echo done > DONE_libdel_s2 ) &
( $E /usr/bin/python3 /tmp/r5b/fmnist1k_torch.py -t 1 --seeds 1 R5 > torch_s1.jsonl 2> torch_s1.err; echo done > DONE_torch_s1 ) &
wait
