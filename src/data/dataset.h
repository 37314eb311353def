/* Internal: the dataset struct and the helpers shared by the data module. */
#ifndef DEL_DATA_DATASET_H
#define DEL_DATA_DATASET_H

#include "del/data.h"

/* Images are u8 N x H x W x C (HWC per image, images back to back); labels
 * are i32, -1 = unlabeled. n may be 0 only for the empty side of a split. */
struct del_dataset {
    int64_t n;
    int height, width, channels;
    size_t image_bytes; /* height * width * channels */
    uint8_t *images;    /* n * image_bytes bytes */
    int32_t *labels;    /* n values */
    int num_classes;    /* 1 + the largest label, 0 if none is labeled */
    del_tensor *soft;   /* f32 [n, K] soft labels (src/data/soft_labels.c), or NULL */
};

/* The largest label a dataset accepts; keeps num_classes an int and makes
 * absurd label files fail early. */
#define DEL_DATASET_MAX_LABEL 9999

/* Allocates a dataset with uninitialised images and labels (n >= 0, the
 * sizes already validated). On failure sets a message naming func and
 * returns DEL_ENOMEM. */
del_status del_dataset_alloc(del_dataset **out, int64_t n, int height, int width, int channels, const char *func);

/* Recomputes ds->num_classes from the labels. */
void del_dataset_update_classes(del_dataset *ds);

/* Fills lut[c][v] for c < channels with the normalised value of byte v:
 * the same float expression as torchvision's ToTensor (v / 255) followed
 * by Normalize ((t - mean) / std), so values match PyTorch bit for bit.
 * channels <= 3. */
void del_normalize_lut(float lut[3][256], int channels, const float *mean, const float *std);

/* One u8 HWC image of plane = height * width pixels -> f32 CHW through a
 * table from del_normalize_lut. */
void del_hwc_to_chw_normalized(float *dst, const uint8_t *src, size_t plane, int channels, const float (*lut)[256]);

/* Gives dst (n rows, just allocated) room for the soft labels of src, if
 * src has any and dst is not empty; the rows are then filled with
 * del_dataset_copy_soft_row. On failure sets a message naming func and
 * returns DEL_ENOMEM (dst unchanged). */
del_status del_dataset_alloc_soft(del_dataset *dst, const del_dataset *src, const char *func);

/* Copies soft-label row si of src to row di of dst (a no-op unless both
 * have soft labels, as del_dataset_alloc_soft leaves them). */
void del_dataset_copy_soft_row(del_dataset *dst, int64_t di, const del_dataset *src, int64_t si);

/* Loads an IDX image/label pair; messages name func. The rest as
 * del_dataset_load_idx. */
del_status del_idx_load_pair(del_dataset **out, const char *images_path, const char *labels_path, const char *func);

#endif
