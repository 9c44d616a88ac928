/* fault.c: simulated power cuts for crash tests (SQLite's habit: fail the
 * Nth I/O on purpose). Configured from the environment of the process:
 *
 *   UEXT4_FAULT_AT=N     the Nth durability step (pwrite or fdatasync of the
 *                        image or of an external journal's file, counted
 *                        from 1) does not happen: a seeded subset of the
 *                        blocks written since the last completed fdatasync
 *                        of their file is rolled back to what it was
 *                        before them — what a disk cache losing unflushed
 *                        writes leaves — and the process exits with
 *                        E2_FAULT_EXIT at once.
 *   UEXT4_FAULT_SEED=S   which unflushed blocks survive (default 0).
 *   UEXT4_FAULT_KILL=1   the process dies at step N instead (SIGKILL): every
 *                        write before it stays, flushed or not.
 *   UEXT4_FAULT_COUNT=P  write the number of steps taken to file P when the
 *                        image is closed (to choose N for later runs).
 *
 * and failed I/O (a full or failing host disk), on the same step count:
 *
 *   UEXT4_FAULT_FAIL_AT=N     the Nth step fails: the pwrite writes nothing,
 *                             the fdatasync syncs nothing, and either returns
 *                             the error below; the process carries on.
 *   UEXT4_FAULT_FAIL_EVERY=K  every Kth step from N on fails (N, N+K,
 *                             N+2K, ...; N is K if unset).
 *   UEXT4_FAULT_FAIL_BIG=B    every pwrite or splice of B bytes or more
 *                             fails (a test's large data writes, and no
 *                             metadata's), whatever its step.
 *   UEXT4_FAULT_ERRNO=E       ENOSPC (default), EIO or EDQUOT.
 *
 * and a wider window for races (tests that check what guards a read):
 *
 *   UEXT4_FAULT_READ_DELAY_US=U  every read of file data from the image
 *                             file outside the disk lock (e2_iom_read_home,
 *                             and a read by reference before its reply,
 *                             e2_data_before_read) waits U microseconds
 *                             first: the time between a read's map and its
 *                             read, during which only the caller's inode
 *                             lock (or, for a reply by reference, the
 *                             drain of fs_op_begin) keeps the blocks the
 *                             file's, stretched for other threads to use.
 *
 *   UEXT4_FAULT_WRITE_DELAY_US=U  every pwrite or splice of 64 KiB or more
 *                             (a large WRITE's data; metadata goes a block
 *                             at a time) waits U microseconds first: for a
 *                             WRITE answered early (uext4_write_pipe_early)
 *                             the time between its answer and its bytes
 *                             leaving the pipe, which still holds the
 *                             kernel's pages, stretched for the caller's
 *                             next requests to race with.
 *
 * Only the image opened read-write is instrumented. Keeping the old
 * contents of every unflushed write costs a read per write, so this is for
 * tests only; with none of the variables set there is no cost. */
#ifndef UEXT4_E2_FAULT_H
#define UEXT4_E2_FAULT_H

#include <ext2fs/ext2fs.h>
#include <stddef.h>
#include <stdint.h>

struct e2_fault;

/* *@out is NULL when no variable is set. */
errcode_t e2_fault_from_env(struct e2_fault **out);
/* A step that writes @len bytes at @off of @fd: may not return; returns
 * the errno the write must fail with without writing, or 0. */
int e2_fault_before_write(struct e2_fault *f, int fd, size_t len, uint64_t off);
/* A step that syncs @fd: may not return; returns the errno the sync must
 * fail with, or 0. */
int e2_fault_before_sync(struct e2_fault *f, int fd);
/* A read of the image file outside the disk lock is about to start. */
void e2_fault_before_read_home(struct e2_fault *f);
/* The sync of @fd completed: what was written to it is now safe. */
void e2_fault_synced(struct e2_fault *f, int fd);
void e2_fault_destroy(struct e2_fault *f);

#endif
