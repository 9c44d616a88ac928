/* FUSE over io_uring: the kernel's interface (protocol 7.42, Linux 6.14),
 * which Debian 12's <linux/fuse.h> (7.38) predates. The one place these
 * facts are written down; names carry an fe_ prefix so that a newer system
 * header defining the kernel's own names cannot collide with them.
 *
 * The protocol, as the kernel's fs/fuse/dev_uring.c serves it:
 * - The daemon offers FUSE_OVER_IO_URING (init flags2 bit 9, i.e. bit 41 of
 *   the 64-bit flags) in its INIT reply; the kernel offers it in INIT only
 *   while the fuse module's enable_uring parameter is set.
 * - After INIT is answered, each ring entry is registered with an
 *   IORING_OP_URING_CMD on the /dev/fuse descriptor (rings made with
 *   IORING_SETUP_SQE128: struct fe_uring_cmd_req lives in the SQE's command
 *   area), cmd_op REGISTER, addr/len an array of two iovecs: a struct
 *   fe_uring_req_header and a payload buffer of at least the connection's
 *   largest request (max(8 KiB, max_write, max_pages pages)).
 * - The kernel uses the ring once every queue (one per possible CPU; a
 *   request goes to the queue of the CPU that sends it) has an entry.
 * - A command completes when a request is put into its entry: in_out holds
 *   the fuse_in_header, op_in the opcode's fixed argument, the payload
 *   the rest (payload_sz bytes), ring_ent_in_out.commit_id the request's
 *   unique. The reply goes back the same way: fuse_out_header in in_out,
 *   the whole reply body in the payload, payload_sz its size, committed
 *   with cmd_op COMMIT_AND_FETCH, which also waits for the next request.
 * - Notifications (unique 0), FORGETs and INTERRUPTs still go through
 *   read(2) and write(2) on /dev/fuse.
 * - When the connection ends, waiting commands complete with -ENOTCONN. */
#ifndef UEXT4_FRONTEND_URING_ABI_H
#define UEXT4_FRONTEND_URING_ABI_H

#include <stdint.h>

/* In fuse_init_in.flags2 / fuse_init_out.flags2 (the high 32 bits). */
#define FE_FUSE_OVER_IO_URING_FLAGS2 (1u << (41 - 32))

#define FE_URING_IN_OUT_HEADER_SZ 128
#define FE_URING_OP_IN_OUT_SZ     128

struct fe_uring_ent_in_out {
    uint64_t flags;
    uint64_t commit_id; /* the request's unique */
    uint32_t payload_sz;
    uint32_t padding;
    uint64_t reserved;
};

struct fe_uring_req_header {
    char in_out[FE_URING_IN_OUT_HEADER_SZ]; /* fuse_in_header / fuse_out_header */
    char op_in[FE_URING_OP_IN_OUT_SZ];      /* the opcode's fixed argument */
    struct fe_uring_ent_in_out ring_ent_in_out;
};

enum {
    FE_IO_URING_CMD_REGISTER = 1,
    FE_IO_URING_CMD_COMMIT_AND_FETCH = 2,
};

/* In the SQE128 command area (80 bytes). */
struct fe_uring_cmd_req {
    uint64_t flags;
    uint64_t commit_id;
    uint16_t qid;
    uint8_t padding[6];
};

_Static_assert(sizeof(struct fe_uring_ent_in_out) == 32, "kernel ABI");
_Static_assert(sizeof(struct fe_uring_req_header) == 288, "kernel ABI");
_Static_assert(sizeof(struct fe_uring_cmd_req) == 24, "kernel ABI");

#endif
