/* LD_PRELOAD shim: write, pwrite, fsync and fdatasync on the queue
 * database (queue.sqlite and its -wal/-journal files) fail while the
 * control directory named by SCRIPTSERVER_DISK_FAULTS holds a file
 * "eio" (fail with EIO) or "enospc" (fail with ENOSPC). Tests create and
 * remove that file to switch the faults on and off at run time.
 *
 * Built by the tests with gcc -shared -fPIC ... -ldl, never installed.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

/* The errno to fail with now, or 0 when faults are off. */
static int injected_error(void)
{
    const char *control = getenv("SCRIPTSERVER_DISK_FAULTS");
    char flag[PATH_MAX];
    if (control == NULL)
        return 0;
    snprintf(flag, sizeof flag, "%s/eio", control);
    if (access(flag, F_OK) == 0)
        return EIO;
    snprintf(flag, sizeof flag, "%s/enospc", control);
    if (access(flag, F_OK) == 0)
        return ENOSPC;
    return 0;
}

static int is_queue_database(int fd)
{
    char link[64], path[PATH_MAX];
    ssize_t length;
    const char *name;
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    length = readlink(link, path, sizeof path - 1);
    if (length < 0)
        return 0;
    path[length] = '\0';
    name = strrchr(path, '/');
    name = name ? name + 1 : path;
    return strcmp(name, "queue.sqlite") == 0 ||
           strcmp(name, "queue.sqlite-wal") == 0 ||
           strcmp(name, "queue.sqlite-journal") == 0;
}

/* Nonzero (with errno set) if the call on *fd* must fail now. */
static int fails(int fd)
{
    int error = injected_error();
    if (error == 0 || !is_queue_database(fd))
        return 0;
    errno = error;
    return 1;
}

#define REAL(name) static __typeof__(name) *real; \
    if (real == NULL) real = (__typeof__(name) *)dlsym(RTLD_NEXT, #name)

ssize_t write(int fd, const void *buf, size_t count)
{
    REAL(write);
    return fails(fd) ? -1 : real(fd, buf, count);
}

ssize_t pwrite(int fd, const void *buf, size_t count, off_t offset)
{
    REAL(pwrite);
    return fails(fd) ? -1 : real(fd, buf, count, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t count, off64_t offset)
{
    REAL(pwrite64);
    return fails(fd) ? -1 : real(fd, buf, count, offset);
}

int fsync(int fd)
{
    REAL(fsync);
    return fails(fd) ? -1 : real(fd);
}

int fdatasync(int fd)
{
    REAL(fdatasync);
    return fails(fd) ? -1 : real(fd);
}
