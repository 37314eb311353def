/* The run-time version, from the header's macros. */
#include "del/version.h"

#define DEL_STR_(x) #x
#define DEL_STR(x) DEL_STR_(x)

DEL_API const char *del_version_string(void)
{
    return DEL_STR(DEL_VERSION_MAJOR) "." DEL_STR(DEL_VERSION_MINOR) "." DEL_STR(DEL_VERSION_PATCH);
}

DEL_API int del_version_number(void)
{
    return DEL_VERSION_MAJOR * 10000 + DEL_VERSION_MINOR * 100 + DEL_VERSION_PATCH;
}
