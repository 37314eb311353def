/* One read loop for every zlib-backed reader, so that I/O, memory and
 * corrupt-gzip failures read the same whichever format hit them. */
#include <errno.h>
#include <string.h>

#include "core/error.h"
#include "data/gzio.h"

/* gzread takes an unsigned int; bounded chunks also keep one call's
 * request within it whatever len the caller asks for. */
#define GZ_CHUNK ((size_t)1 << 26)

del_status del_gz_read(gzFile f, uint8_t *buf, size_t len, size_t *got, bool cut_stream_is_error, const char *path,
                       const char *func)
{
    size_t total = 0;
    while (total < len) {
        size_t want = len - total < GZ_CHUNK ? len - total : GZ_CHUNK;
        int r = gzread(f, buf + total, (unsigned)want);
        if (r < 0) {
            int errnum = 0;
            const char *msg = gzerror(f, &errnum);
            if (errnum == Z_ERRNO)
                return del_error(DEL_EIO, "%s: cannot read '%s': %s", func, path, strerror(errno));
            if (errnum == Z_MEM_ERROR)
                return del_error(DEL_ENOMEM, "%s: out of memory while reading '%s'", func, path);
            return del_error(DEL_EFORMAT, "%s: '%s' is not valid gzip data (%s)", func, path, msg);
        }
        if (r == 0) {
            /* zlib treats a stream cut short as a file still being
             * written: no read error, only this state, and the trailer's
             * CRC was never checked. */
            int errnum = 0;
            gzerror(f, &errnum);
            if (cut_stream_is_error && errnum == Z_BUF_ERROR)
                return del_error(DEL_EFORMAT, "%s: '%s' is a truncated gzip stream", func, path);
            break;
        }
        total += (size_t)r;
    }
    *got = total;
    return DEL_OK;
}
