/* The public builders of the pooling and residual layers (model.c has the
 * original ones); each is one row of cfg handed to del_model_add_layer. */
#include "nn/layer.h"

DEL_API del_status del_model_add_avgpool(del_model *model, int kernel, int stride)
{
    del_layer_cfg c = {.kernel = kernel, .stride = stride};
    return del_model_add_layer(model, &del_layer_avgpool, &c, "del_model_add_avgpool");
}

DEL_API del_status del_model_add_global_avgpool(del_model *model)
{
    del_layer_cfg c = {0};
    return del_model_add_layer(model, &del_layer_global_avgpool, &c, "del_model_add_global_avgpool");
}

DEL_API del_status del_model_add_residual(del_model *model, int out_channels, int stride, float survival_prob)
{
    del_layer_cfg c = {.out = out_channels, .stride = stride, .survival = survival_prob};
    return del_model_add_layer(model, &del_layer_residual, &c, "del_model_add_residual");
}
