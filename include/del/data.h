/* libdel — datasets of uint8 images (N x H x W x C, HWC per image) with
 * int32 labels (-1 = unlabeled) and, optionally, soft labels (an f32
 * probability vector per image, e.g. a teacher's predictions).
 *
 * A dataset does not change after creation except through
 * del_dataset_set_soft_labels, which must not run while another thread
 * uses the dataset; otherwise any number of threads may read the same
 * dataset at once. */
#ifndef DEL_DATA_H
#define DEL_DATA_H

#include "common.h"
#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Where Debian's dataset-fashion-mnist package installs Fashion-MNIST. */
#define DEL_FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef enum del_split {
    DEL_SPLIT_TRAIN = 0, /* Fashion-MNIST train-images-idx3-ubyte(.gz), 60,000 images;
                            CIFAR-10 data_batch_1..5.bin, 50,000 images */
    DEL_SPLIT_TEST = 1   /* Fashion-MNIST t10k-images-idx3-ubyte(.gz), 10,000 images;
                            CIFAR-10 test_batch.bin, 10,000 images */
} del_split;

typedef struct del_dataset del_dataset;

/* Loads an IDX image file (u8, 3 dims N x H x W, or 4 dims N x H x W x C)
 * and an IDX label file (u8, 1 dim N), each plain or gzip-compressed
 * (detected from the content). labels_path may be NULL: all labels -1.
 * Errors: DEL_EINVAL (NULL out or images_path), DEL_EIO (cannot open or
 * read, message names the file), DEL_EFORMAT (bad magic, wrong type or
 * rank, truncated data, label count differs from image count). */
DEL_API del_status del_dataset_load_idx(del_dataset **out, const char *images_path, const char *labels_path);

/* Loads a Fashion-MNIST (or MNIST) split from dir using the standard file
 * names, trying "<name>.gz" first and then "<name>". dir NULL means
 * DEL_FASHION_MNIST_DIR. Errors: as del_dataset_load_idx; DEL_EINVAL for
 * an unknown split. */
DEL_API del_status del_dataset_load_fashion_mnist(del_dataset **out, const char *dir, del_split split);

/* Loads one file of the CIFAR-10 binary version (data_batch_N.bin or
 * test_batch.bin), plain or gzip-compressed (detected from the content):
 * records of 1 label byte (0..9) and 3072 pixel bytes, the 32x32 planes
 * R, G, B in turn (CHW), converted to 32x32x3 HWC images in file order.
 * Errors: DEL_EINVAL (NULL or empty argument), DEL_EIO (cannot open or
 * read; the message names the file), DEL_EFORMAT (empty file, size not a
 * multiple of 3073 bytes, a label above 9, invalid or truncated gzip
 * data; the message names the file and, for a label, the record),
 * DEL_ENOMEM. */
DEL_API del_status del_dataset_load_cifar10(del_dataset **out, const char *path);

/* Loads a CIFAR-10 split from dir (the cifar-10-batches-bin folder of the
 * binary archive): data_batch_1.bin .. data_batch_5.bin concatenated in
 * that order for DEL_SPLIT_TRAIN, test_batch.bin for DEL_SPLIT_TEST;
 * each name is tried with ".gz" appended first.
 * Errors: as del_dataset_load_cifar10; DEL_EINVAL for a NULL or empty dir
 * or an unknown split. */
DEL_API del_status del_dataset_load_cifar10_dir(del_dataset **out, const char *dir, del_split split);

/* Creates a dataset by copying n images (n*height*width*channels bytes,
 * HWC per image) and n labels (labels NULL: all -1). Labels must be -1 or
 * in 0..9999. Errors: DEL_EINVAL (NULL out/images, n < 1, a size < 1,
 * channels not 1 or 3, bad label), DEL_ENOMEM. */
DEL_API del_status del_dataset_from_arrays(del_dataset **out, const uint8_t *images, const int32_t *labels, int64_t n, int height, int width, int channels);

/* Frees ds. del_dataset_free(NULL) is a no-op. */
DEL_API void del_dataset_free(del_dataset *ds);

/* Number of images; 0 if ds is NULL. */
DEL_API int64_t del_dataset_size(const del_dataset *ds);

/* Image height, width, channels; 0 if ds is NULL. */
DEL_API int del_dataset_height(const del_dataset *ds);
DEL_API int del_dataset_width(const del_dataset *ds);
DEL_API int del_dataset_channels(const del_dataset *ds);

/* 1 + the largest label (0 if no image is labeled or ds is NULL). */
DEL_API int del_dataset_num_classes(const del_dataset *ds);

/* The images, size*height*width*channels bytes (borrowed, read-only,
 * valid while ds lives). NULL if ds is NULL. */
DEL_API const uint8_t *del_dataset_images(const del_dataset *ds);

/* The labels, size int32 values, -1 = unlabeled (borrowed). */
DEL_API const int32_t *del_dataset_labels(const del_dataset *ds);

/* Splits src into the first per_class images of each class, in file order
 * (*labeled), and all other images (*unlabeled, every label set to -1;
 * images whose label is already -1 also go there). The FMNIST-1k labeled
 * set is per_class = 100 on the Fashion-MNIST train split. Either out
 * pointer may be NULL if that part is not wanted. Soft labels of src
 * (del_dataset_set_soft_labels) go with their images to either part (an
 * empty part has none).
 * Errors: DEL_EINVAL (src NULL, per_class < 1, both outs NULL, a class has
 * fewer than per_class images: the message names the class), DEL_ENOMEM. */
DEL_API del_status del_dataset_split_per_class(del_dataset **labeled, del_dataset **unlabeled, const del_dataset *src, int per_class);

/* Creates a dataset of the n images src[indices[i]] (copied, in the given
 * order; repeats allowed), with their labels and, if src has them, their
 * soft labels. Errors: DEL_EINVAL (NULL argument, n < 1, an
 * index outside 0..size-1: the message names it), DEL_ENOMEM. */
DEL_API del_status del_dataset_subset(del_dataset **out, const del_dataset *src, const int64_t *indices, int64_t n);

/* Fills a training batch: x[i] = (image[indices[i]] / 255 - mean[c]) / std[c]
 * as f32 NCHW (x must be an f32 tensor of shape [n, C, H, W]) and, if y is
 * not NULL, y[i] = label[indices[i]] (y must be an i32 tensor of shape [n]).
 * mean and std hold C values each: mean values finite, std values finite
 * and > 0. On an error nothing is written to x or y.
 * Errors: DEL_EINVAL (NULL argument, wrong dtype or shape of x or y, index
 * out of range, a mean value not finite, a std value not finite or <= 0:
 * the message names it and its value). */
DEL_API del_status del_dataset_batch(const del_dataset *ds, const int64_t *indices, int64_t n, const float *mean, const float *std, del_tensor *x, del_tensor *y);

/* ---- Soft labels ----
 * A probability vector over K classes per image, for instance a teacher's
 * softmax over 60,000 images computed once (and kept in a tensor file,
 * del_tensor_save) for distillation. They live beside the hard labels,
 * which they do not change (del_dataset_num_classes still counts hard
 * labels; K need not equal it). */

/* Sets ds's soft labels to a copy of soft, an f32 [N, K] tensor with N =
 * del_dataset_size(ds), 1 <= K <= 10000, and each row a probability
 * vector: every value finite and >= 0, the row summing to 1 within 1e-3
 * (in double; the tolerance of del_loss_soft_cross_entropy, whose targets
 * the rows can be as they are). soft NULL removes them. Not thread-safe:
 * no other thread may use ds meanwhile; a tensor returned by an earlier
 * del_dataset_soft_labels is freed by this call. On failure ds keeps what
 * it had. Errors: DEL_EINVAL (ds NULL; soft not f32 [N, K]; a value
 * negative, NaN or infinite, or a row not summing to 1: the message names
 * 'soft', the row and the value), DEL_ENOMEM. */
DEL_API del_status del_dataset_set_soft_labels(del_dataset *ds, const del_tensor *soft);

/* The soft labels of ds, f32 [N, K] (borrowed, read-only: valid until ds
 * is freed or its soft labels are set again); NULL if ds is NULL or has
 * none. */
DEL_API const del_tensor *del_dataset_soft_labels(const del_dataset *ds);

/* K, the number of soft classes of ds; 0 if ds is NULL or has no soft
 * labels. */
DEL_API int del_dataset_num_soft_classes(const del_dataset *ds);

/* Gathers soft labels for a batch: row i of out (f32 [n, K]) receives the
 * soft labels of image indices[i], as del_dataset_batch gathers y.
 * Errors: DEL_EINVAL (NULL argument, n < 1, out not f32 [n, K], an index
 * outside 0..size-1: the message names it), DEL_ESTATE (ds has no soft
 * labels). out is untouched on failure. */
DEL_API del_status del_dataset_soft_batch(const del_dataset *ds, const int64_t *indices, int64_t n, del_tensor *out);

/* Batch orders: perm[0..n-1] receives a permutation of 0..n-1 drawn from
 * the random stream (seed, epoch, stream), the one that the library's
 * other draws keyed by (seed, epoch, ...) never share when stream differs
 * from every image index (the trainers use stream values >= 2^32). The
 * same arguments give the same permutation on every machine and thread
 * count: a Fisher-Yates shuffle of the identity with the library's
 * xoshiro256** stream (include/del/augment.h's streams). The trainers
 * draw each epoch's batch order this way.
 * Errors: DEL_EINVAL (NULL perm with n > 0, n < 0). */
DEL_API del_status del_permutation(int64_t *perm, int64_t n, uint64_t seed, uint64_t epoch, uint64_t stream);

#ifdef __cplusplus
}
#endif
#endif
