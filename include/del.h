/* libdel — data-efficient learning of image classifiers.
 * The umbrella header: include this one. */
#ifndef DEL_H
#define DEL_H

#include "del/common.h"
#include "del/version.h"
#include "del/tensor.h"
#include "del/data.h"
#include "del/model.h"
#include "del/train.h"
#include "del/checkpoint.h"
#include "del/augment.h"
#include "del/io.h"

#endif
