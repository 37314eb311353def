/* Selects the compute backend: only the CPU one exists so far. */
#include "backend/backend.h"

#include <pthread.h>

#include "backend/cpu/cpu.h"

static pthread_once_t g_backend_once = PTHREAD_ONCE_INIT;

const del_backend *del_backend_get(void)
{
    pthread_once(&g_backend_once, del_cpu_init);
    return &del_cpu_backend;
}
