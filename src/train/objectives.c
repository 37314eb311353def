/* The objective registry: every technique a trainer can run. */
#include "trainer_internal.h"

const del_objective *const del_objectives[] = {
    &del_objective_supervised,
    &del_objective_finetune,
    &del_objective_distill,
    &del_objective_lwf,
    &del_objective_pseudo_label,
    &del_objective_consistency,
    NULL,
};
