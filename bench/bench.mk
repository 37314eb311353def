# Benchmarks (included by the top Makefile).
#   make bench                        sgemm check, libdel vs PyTorch throughput
#                                     (fmnist-cnn, resnet20), prediction over the
#                                     Fashion-MNIST training set (del_model_predict
#                                     vs a DataLoader), libdel vs torchvision
#                                     augmentation speed, then peak memory of
#                                     fmnist-cnn training (JSON lines on stdout;
#                                     BENCH_THREADS="1 2", BENCH_ROUNDS=3,
#                                     BENCH_MODELS, BENCH_RSS_STEPS=20 adjust it)
#   make bench-predict                the prediction part alone
#   make bench-augment                the augmentation part alone
#   make bench-memory                 the peak-memory part alone
#   make bench-kd                     the distillation-step part alone
#   make bench-recipe                 recipe_fmnist1k_r1 alone (R1's wall time)
#   make bench-pl                     the pseudo-label-step part alone (R4's step
#                                     with and without its augmentation)
#   make bench-fmnist1k RECIPES="R0"  FMNIST-1k accuracy, libdel vs PyTorch
#                       [SEEDS="0 1 2"] [STEPS=N, a shorter smoke run] [THREADS=T]

RECIPES ?= R0
SEEDS ?= 0
STEPS ?=
THREADS ?=

# sgemm_check only needs OpenBLAS: it must be able to vouch for the BLAS
# even while the library itself does not build.
build/bench/sgemm_check: bench/sgemm_check.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_APP) $(BLAS_CFLAGS) $< -o $@ $(BLAS_LIBS) -lm

bench: build/bench/sgemm_check build/bench/throughput build/bench/augment build/bench/kd_step build/bench/pl_step \
       build/bench/fmnist1k
	@bench/run.sh

bench-predict: build/bench/throughput
	@BENCH_SUITES=predict bench/run.sh

bench-augment: build/bench/augment
	@BENCH_SUITES=augment bench/run.sh

bench-memory: build/bench/throughput
	@BENCH_SUITES=memory bench/run.sh

bench-kd: build/bench/kd_step
	@BENCH_SUITES=kd bench/run.sh

bench-pl: build/bench/pl_step
	@BENCH_SUITES=pl bench/run.sh

bench-recipe: build/bench/fmnist1k
	@BENCH_SUITES=recipe bench/run.sh

bench-fmnist1k: build/bench/fmnist1k
	@RECIPES="$(RECIPES)" SEEDS="$(SEEDS)" STEPS="$(STEPS)" THREADS="$(THREADS)" bench/fmnist1k.sh

.PHONY: bench bench-predict bench-augment bench-memory bench-kd bench-pl bench-recipe bench-fmnist1k
