/* libdel quick start (quoted in README.md): train the reference CNN on
 * FMNIST-1k, the first 100 Fashion-MNIST training images of each class, and
 * print its accuracy on the 10,000 test images. */
#include <del.h>
#include <stdio.h>

int main(void)
{
    del_dataset *train = NULL, *test = NULL, *labeled = NULL;
    del_model *model = NULL;
    del_trainer *trainer = NULL;
    double acc = 0;
    int rc = 1;

    if (del_dataset_load_fashion_mnist(&train, NULL, DEL_SPLIT_TRAIN) != DEL_OK ||
        del_dataset_load_fashion_mnist(&test, NULL, DEL_SPLIT_TEST) != DEL_OK ||
        del_dataset_split_per_class(&labeled, NULL, train, 100) != DEL_OK ||
        del_model_preset(&model, "fmnist-cnn", 1, 28, 28, 10) != DEL_OK ||
        del_trainer_new_supervised(&trainer, model, labeled) != DEL_OK ||
        del_trainer_fit(trainer, 500) != DEL_OK ||
        del_trainer_evaluate(trainer, test, &acc) != DEL_OK) {
        fprintf(stderr, "error: %s\n", del_last_error());
        goto cleanup;
    }
    printf("libdel %s: test accuracy %.3f\n", del_version_string(), acc);
    rc = 0;
cleanup:
    del_trainer_free(trainer);
    del_model_free(model);
    del_dataset_free(labeled);
    del_dataset_free(test);
    del_dataset_free(train);
    return rc;
}
