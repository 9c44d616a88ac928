/* The scenario runner: a text scenario (doc/scenario-format.md) parsed into
 * steps, replayed on one backend, with the outcome of every line recorded.
 *
 * Layering: the runner sits beside the FUSE front end (L3). The lib backend
 * drives include/uext4.h in-process; the mount and kernel backends drive
 * real syscalls on a mounted image and reach the core only read-only, through
 * the library, once the image is unmounted (a "checkpoint").
 *
 * Every function returns 0 or -errno unless it says otherwise. Nothing here
 * is thread-safe except the step execution inside a `parallel` block, which
 * touches only the backend calls documented as such in struct scn_backend.
 */
#ifndef SCN_H
#define SCN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/statvfs.h>
#include <sys/types.h>
#include <time.h>

#include "uext4.h"

#define SCN_MAX_TOKENS   16
#define SCN_MAX_PARALLEL 8

/* Tags a line can be qualified with (`expect[keep,lib] ...`). Backend tags
 * and inline_mmap tags are two categories: a line applies when it names no
 * tag of a category or names the active one. A kernel run has no
 * inline_mmap tag, so lines qualified by keep/convert never apply there. */
enum {
    SCN_TAG_LIB = 1u << 0,
    SCN_TAG_MOUNT = 1u << 1,
    SCN_TAG_KERNEL = 1u << 2,
    SCN_TAG_KEEP = 1u << 3,
    SCN_TAG_CONVERT = 1u << 4,
    /* the lib backend with one behaviour planted wrong (scn_backend_fake) */
    SCN_TAG_FAKE = 1u << 5,
};
#define SCN_TAGS_BACKEND (SCN_TAG_LIB | SCN_TAG_MOUNT | SCN_TAG_KERNEL | SCN_TAG_FAKE)
#define SCN_TAGS_MODE    (SCN_TAG_KEEP | SCN_TAG_CONVERT)

enum scn_op {
    SCN_CREATE,
    SCN_OPEN,
    SCN_CLOSE,
    SCN_WRITE,
    SCN_READ, /* read and expect bytes */
    SCN_MMAP_STORE,
    SCN_WRITEBACK,
    SCN_TRUNCATE,
    SCN_FALLOCATE, /* also punch and zero-range: mode says which */
    SCN_FSYNC,
    SCN_UNLINK,
    SCN_RENAME,
    SCN_LINK,
    SCN_SYMLINK,
    SCN_MKDIR,
    SCN_RMDIR,
    SCN_SETXATTR,
    SCN_REMOVEXATTR,
    SCN_REMOUNT,
    SCN_FSCK_CLEAN,
    SCN_SYNC, /* path NULL: the whole file system; else syncfs on its fd */
    SCN_FDATASYNC,
    SCN_DROP_CACHES,        /* write everything back, then evict clean caches */
    SCN_SLEEP,              /* len: milliseconds */
    SCN_SETATTR,            /* chmod, chown, utimes: mode says which UEXT4_SET_* bits */
    SCN_SEEK,               /* seek-data/seek-hole: mode is the whence, value the result */
    SCN_MMAP_LOAD,          /* read through a shared mapping and expect bytes */
    SCN_COPY_RANGE,         /* copy_file_range(path, off -> path2, value, len) */
    SCN_MUNMAP,             /* drop the shared mapping without msync */
    SCN_MSYNC_ASYNC,        /* msync(MS_ASYNC) of the shared mapping */
    SCN_MMAP_PRIVATE_STORE, /* a store through a MAP_PRIVATE mapping */
    SCN_MPROTECT,           /* mode: PROT_READ or PROT_READ | PROT_WRITE */
    SCN_STAMP,              /* remember path's mtime for `expect PATH mtime-changed` */
    SCN_EXPECT,
    SCN_PARALLEL, /* steps [first, first + count) run on their own threads */
};

/* What an `expect PATH WHAT ...` line checks. The storage kinds read the
 * inode as stored (uext4_inspect; on a mount the daemon's inspect xattr);
 * in the kernel backend they make a checkpoint. */
enum scn_what {
    SCN_W_INLINE,         /* storage: EXT4_INLINE_DATA_FL set */
    SCN_W_EXTENTS,        /* storage: not inline, EXT4_EXTENTS_FL set */
    SCN_W_FLAGS,          /* storage: +NAME/-NAME/=HEX on i_flags */
    SCN_W_DISK_SIZE,      /* storage: i_size as stored */
    SCN_W_INLINE_SIZE,    /* storage */
    SCN_W_CAPACITY,       /* storage: inline capacity */
    SCN_W_BLOCKS,         /* storage: i_blocks in 512-byte units */
    SCN_W_NEXTENTS,       /* storage */
    SCN_W_SIZE,           /* live: st_size */
    SCN_W_NLINK,          /* live */
    SCN_W_TYPE,           /* live: file, dir, symlink */
    SCN_W_EXISTS,         /* live */
    SCN_W_MISSING,        /* live */
    SCN_W_CONTENT,        /* live: the whole file */
    SCN_W_CONTENT_ONE_OF, /* live: the whole file is one of several */
    SCN_W_XATTR,          /* live: one value */
    SCN_W_NO_XATTR,       /* live */
    SCN_W_XATTRS,         /* live: the sorted list of names */
    SCN_W_ENTRIES,        /* live: sorted directory entries without . and .. */
    SCN_W_DIRTY_PAGES,    /* lib only: emulated dirty pages */
    SCN_W_MODE,           /* live: permission bits (st_mode & 07777) */
    SCN_W_UID,            /* live */
    SCN_W_GID,            /* live */
    SCN_W_MTIME,          /* live: st_mtime in whole seconds */
    SCN_W_DIGEST,         /* live: "SIZE:FNV1A64" of the whole content */
    SCN_W_STATFS,         /* live: statvfs field (name) compared (mode) to value */
    SCN_W_NEWER,          /* live: path's mtime later than name's (ns) */
    SCN_W_MTIME_CHANGED,  /* live: mtime differs from the last `stamp PATH` */
    SCN_W_MTIME_SAME,     /* live: mtime equals the last `stamp PATH` */
};

/* How SCN_W_STATFS compares (`bfree 100`, `bfree >=100`, `bfree <=100`). */
enum { SCN_CMP_EQ, SCN_CMP_GE, SCN_CMP_LE };

struct scn_data {
    unsigned char *bytes;
    size_t len;
};

struct scn_step {
    int line;
    enum scn_op op;
    unsigned tags;  /* 0: every run */
    int want_errno; /* positive errno the step must fail with, 0: success */
    /* `=> ok|ENOSPC`: further acceptable results (positive errno, 0: ok) */
    int want_alt[3];
    unsigned nalt;
    /* `=> short:N` (writes): N bytes written of more is an accepted result;
     * short_only: and a full write is not */
    bool want_short, short_only;
    int64_t short_len;
    char *path, *path2;
    char *name; /* xattr name */
    int64_t off, len;
    int mode; /* fallocate mode, rename flags, xattr flags, file mode */
    struct scn_data data;
    /* expect */
    enum scn_what what;
    int64_t value, value2;           /* value2: chown's gid, utimes' mtime */
    uint32_t flags_set, flags_clear; /* SCN_W_FLAGS */
    bool flags_exact;
    struct scn_data *alts; /* SCN_W_CONTENT_ONE_OF */
    unsigned nalts;
    char **names; /* SCN_W_XATTRS, SCN_W_ENTRIES: sorted */
    unsigned nnames;
    /* parallel: steps [first, first + count) of the script */
    unsigned first, count;
    struct scn_step *body; /* parse time only */
};

struct scn_image {
    char fstype[16];
    char features[256]; /* mke2fs -O, "" for the defaults */
    uint64_t size;
    unsigned inode_size, block_size;
    /* `debugfs "CMD"` lines, run with debugfs -w after mkfs, in order */
    char **debugfs;
    unsigned ndebugfs;
    /* `fill N`: blocks left free after filling (-1: no fill) */
    int64_t fill_free;
    /* `mount-opts kernel=... uext4=...`: extra -o for each ("" none) */
    char kernel_opts[256], uext4_opts[256];
};

struct scn_script {
    char *file, *name;
    struct scn_image image;
    unsigned backends; /* SCN_TAGS_BACKEND subset this scenario runs on */
    unsigned modes;    /* SCN_TAGS_MODE subset to run in lib/mount */
    bool final_fsck;
    struct scn_step *steps;
    unsigned nsteps;
    unsigned ntop; /* steps [0, ntop) are top level; parallel bodies follow */
};

/* ---- lex.c: tokens and byte specifications ---- */

/* Split @line in place into at most SCN_MAX_TOKENS tokens (a token runs to
 * unquoted whitespace; `#` outside quotes starts a comment). Returns the
 * count, or -EINVAL with a reason in @why. */
int scn_tokenize(char *line, char **tok, char *why, size_t why_len);
/* Parse a byte specification ("text" with C escapes, zero:N, pat:N[:SEED],
 * fill:N:BYTE, pieces joined with +). */
int scn_parse_data(const char *tok, struct scn_data *out, char *why, size_t why_len);
int scn_parse_num(const char *tok, int64_t *out);
/* Readable rendering of bytes for messages (quoted, shortened). */
void scn_describe(const unsigned char *b, size_t len, char *out, size_t out_len);
/* The deterministic pattern byte at @i for @seed (pat:N:SEED). */
unsigned char scn_pattern_byte(uint64_t i, unsigned seed);
int scn_errno_by_name(const char *name);
const char *scn_errno_name(int err);

/* ---- parse.c ---- */

/* Parse @file. Problems are printed as `FILE:LINE: problem` to stderr;
 * returns -EINVAL if there was any. */
int scn_parse_file(const char *file, struct scn_script *out);
void scn_script_free(struct scn_script *s);
const char *scn_op_name(enum scn_op op);
/* The step's keyword as written (seek-hole, syncfs, chown, ...). */
const char *scn_step_name(const struct scn_step *st);

/* ---- proc.c: child processes with timeouts ---- */

/* Run @argv, output to @log (appended; NULL: /dev/null), killing it after
 * @timeout_s. Returns the exit status (0..255), or -errno / -ETIMEDOUT. */
int scn_run_cmd(char *const argv[], const char *log, unsigned timeout_s);
/* Wait for @pid up to @timeout_s; returns its exit status or -ETIMEDOUT. */
int scn_wait_pid(pid_t pid, unsigned timeout_s);
/* The first @max bytes of @path, one line per line, for failure messages. */
void scn_log_excerpt(const char *path, char *out, size_t max);

/* ---- image.c ---- */

/* mke2fs @img from @im with the fixed UUID and hash seed, then the
 * header's debugfs commands and fill. */
int scn_mkfs(const struct scn_image *im, const char *img, const char *log, char *why,
             size_t why_len);
/* e2fsck -fn; 0 if clean, else -EUCLEAN with the report's start in @why. */
int scn_fsck(const char *img, const char *log, char *why, size_t why_len);

/* ---- backends ---- */

struct scn_run;

/* What a backend provides. Paths are relative to the file system's root.
 * `open files` are named by the path they were opened with (scn handles);
 * operations on a path use its open file when there is one. Functions
 * marked (parallel) may run concurrently from a `parallel` block. */
struct scn_backend {
    const char *name;
    unsigned tag;
    /* inspect() works while live (lib, mount); else storage checks need a checkpoint. */
    bool live_inspect;
    /* Whether this machine can run the backend at all (else: skipped). */
    bool (*available)(struct scn_run *r, char *why, size_t why_len);
    /* Make the file system live (mount / open). */
    int (*start)(struct scn_run *r, char *why, size_t why_len);
    /* Close every open file and take the file system down; the image is
     * then consistent on disk. */
    int (*stop)(struct scn_run *r, char *why, size_t why_len);
    /* Free the backend's state (after stop). */
    void (*fini)(struct scn_run *r);
    /* Storage of @path: lib reads it live, the others need stop() first. */
    int (*inspect)(struct scn_run *r, const char *path, struct uext4_inode_info *info);
    /* Steps (parallel): the step's own result, 0 or -errno. Reads return
     * the bytes in @buf (allocated, freed by the caller). */
    int (*create)(struct scn_run *r, const char *path, mode_t mode);
    /* @flags: O_RDWR or O_RDONLY, with O_APPEND, O_TRUNC, O_DIRECT */
    int (*open)(struct scn_run *r, const char *path, int flags);
    int (*close)(struct scn_run *r, const char *path);
    /* The bytes written (short counts as write(2) returns them) or -errno. */
    ssize_t (*write)(struct scn_run *r, const char *path, const void *buf, size_t len, off_t off);
    ssize_t (*read)(struct scn_run *r, const char *path, void *buf, size_t len, off_t off);
    int (*mmap_store)(struct scn_run *r, const char *path, const void *buf, size_t len, off_t off);
    int (*writeback)(struct scn_run *r, const char *path);
    int (*truncate)(struct scn_run *r, const char *path, off_t size);
    int (*fallocate)(struct scn_run *r, const char *path, int mode, off_t off, off_t len);
    int (*fsync)(struct scn_run *r, const char *path);
    int (*fdatasync)(struct scn_run *r, const char *path);
    /* syncfs(2) through @path's file, or the whole file system (NULL). */
    int (*sync)(struct scn_run *r, const char *path);
    /* Write every dirty page and inode back, then evict what is clean. */
    int (*drop_caches)(struct scn_run *r);
    /* chmod/chown/utimes: UEXT4_SET_MODE, _UID|_GID, _ATIME|_MTIME of @in. */
    int (*setattr)(struct scn_run *r, const char *path, const struct stat *in, unsigned what);
    /* Loads through a MAP_SHARED mapping (lib: the emulated pages, which
     * uext4_read sees): the bytes, or -EFAULT past EOF (SIGBUS). */
    ssize_t (*mmap_load)(struct scn_run *r, const char *path, void *buf, size_t len, off_t off);
    /* copy_file_range(2): 0 when all @len bytes were copied, -EIO if short. */
    int (*copy_range)(struct scn_run *r, const char *from, off_t off_in, const char *to,
                      off_t off_out, size_t len);
    /* lseek(2) SEEK_DATA/SEEK_HOLE: the offset or -errno. */
    off_t (*lseek)(struct scn_run *r, const char *path, off_t off, int whence);
    int (*unlink)(struct scn_run *r, const char *path);
    int (*rmdir)(struct scn_run *r, const char *path);
    int (*mkdir)(struct scn_run *r, const char *path, mode_t mode);
    int (*rename)(struct scn_run *r, const char *from, const char *to, unsigned flags);
    int (*link)(struct scn_run *r, const char *from, const char *to);
    int (*symlink)(struct scn_run *r, const char *target, const char *path);
    int (*setxattr)(struct scn_run *r, const char *path, const char *name, const void *v,
                    size_t len, int flags);
    int (*removexattr)(struct scn_run *r, const char *path, const char *name);
    /* Live queries. */
    int (*stat)(struct scn_run *r, const char *path, struct stat *st);
    /* By name only, ignoring open files: 0 or -ENOENT (or another -errno). */
    int (*lookup)(struct scn_run *r, const char *path);
    ssize_t (*getxattr)(struct scn_run *r, const char *path, const char *name, void *v, size_t len);
    ssize_t (*listxattr)(struct scn_run *r, const char *path, char *list, size_t len);
    /* NUL-separated entry names without . and .., in @list (malloc'd). */
    ssize_t (*entries)(struct scn_run *r, const char *path, char **list);
    /* -EOPNOTSUPP where not observable. */
    int (*dirty_pages)(struct scn_run *r, const char *path);
    /* The mapping steps beyond store and load: munmap (no msync), msync
     * MS_ASYNC, a store through a MAP_PRIVATE mapping, and mprotect of the
     * shared mapping (@prot PROT_READ or PROT_READ | PROT_WRITE). */
    int (*munmap)(struct scn_run *r, const char *path);
    int (*msync_async)(struct scn_run *r, const char *path);
    int (*mmap_private_store)(struct scn_run *r, const char *path, const void *buf, size_t len,
                              off_t off);
    int (*mprotect)(struct scn_run *r, const char *path, int prot);
    int (*statfs)(struct scn_run *r, struct statvfs *sv);
    /* Why this backend cannot honour @st at all (NULL: it can); the run is
     * then skipped with that reason. NULL function: it honours everything. */
    const char *(*cannot)(struct scn_run *r, const struct scn_step *st);
};

extern const struct scn_backend scn_backend_lib;
extern const struct scn_backend scn_backend_mount;
extern const struct scn_backend scn_backend_kernel;
/* The lib backend with a planted difference, to test the fuzzer's
 * minimiser against: PUNCH_HOLE does nothing (and succeeds). */
const struct scn_backend *scn_backend_fake(void);

/* One run of one script on one backend in one mode. */
struct scn_run {
    const struct scn_script *script;
    const struct scn_backend *be;
    unsigned active; /* tags of this run */
    enum uext4_inline_mmap inline_mmap;
    char dir[256]; /* private temp dir (uext4-scn-*) */
    char image[300];
    char mnt[300];
    char log[300];      /* tool and daemon output */
    const char *daemon; /* the uext4 executable (mount backend) */
    bool verbose;
    bool keep; /* leave the temp dir behind */
    /* fuzz: record every outcome, judge nothing (a run stops only when the
     * file system cannot be brought up) */
    bool observe_only;
    void *priv;       /* the backend's state */
    bool live;        /* start()ed and not stop()ped */
    pid_t daemon_pid; /* mount backend: the uext4 process, 0 if none */
    /* read-only view of the image at a checkpoint (mount, kernel) */
    struct uext4_fs *ro;
    /* what each step observed (NULL: not run), indexed like script->steps */
    char **outcome;
    /* `stamp PATH`: the mtimes remembered, by path */
    char *stamp_path[16];
    struct timespec stamp_mtime[16];
    unsigned nstamps;
};

/* ---- expect.c ---- */

/* Storage checks read the inode as stored; see scn_backend.live_inspect. */
bool scn_is_storage_check(const struct scn_step *st);
/* Evaluate an expect step; @got and @want say what was seen and wanted. */
bool scn_check(struct scn_run *r, const struct scn_step *st, char *got, size_t glen, char *want,
               size_t wlen);

/* ---- run.c ---- */

enum scn_result { SCN_OK, SCN_FAIL, SCN_SKIP };

/* Run @s on @be; fills @msg with the failure or skip reason. */
enum scn_result scn_run(struct scn_run *r, char *msg, size_t msg_len);
void scn_run_free(struct scn_run *r);

/* ---- fuzz.c ---- */

/* `uext4-scenario fuzz ...` (@argv[0] is "fuzz"); returns the exit status. */
int scn_fuzz_main(int argc, char **argv);
/* The backends named in @arg (comma list), at most @max; 0 or -EINVAL. */
int scn_parse_backends(const char *arg, const struct scn_backend **out, unsigned max, unsigned *n);
const char *scn_default_daemon(void);

/* ---- sys.c: the syscall backends' shared steps ---- */

struct scn_sys;
int scn_sys_init(struct scn_run *r);
void scn_sys_fini(struct scn_run *r);
/* Close every open file and mapping (writing nothing back explicitly). */
void scn_sys_close_all(struct scn_run *r);
int scn_sys_inspect(struct scn_run *r, const char *path, struct uext4_inode_info *info);
/* The mount backend's: the daemon's UEXT4_INSPECT_XATTR, live (live.c). */
int scn_live_inspect(struct scn_run *r, const char *path, struct uext4_inode_info *info);

/* ---- mounts.c: what serves the syscall backends' mount point ---- */

bool scn_fuse_available(struct scn_run *r, char *why, size_t why_len);
int scn_fuse_start(struct scn_run *r, char *why, size_t why_len);
int scn_fuse_stop(struct scn_run *r, char *why, size_t why_len);
bool scn_loop_available(struct scn_run *r, char *why, size_t why_len);
int scn_loop_start(struct scn_run *r, char *why, size_t why_len);
int scn_loop_stop(struct scn_run *r, char *why, size_t why_len);

#endif
