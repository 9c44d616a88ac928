/* Who is asking: the caller of a FUSE request as a struct uext4_cred. */
#include "frontend/fe_int.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CAP_FSETID_BIT 4 /* <linux/capability.h> */

/* Read the caller's supplementary groups into @c. fuse_req_getgroups() reads
 * them from /proc and returns the full count even when @size is too small,
 * so a second call with a buffer of that size gets them all (unless the
 * caller changed its groups in between: then we take what fitted). When the
 * groups cannot be read (no /proc, a caller in another pid namespace), the
 * caller is checked with its primary group only: fewer rights, never more. */
static void fe_cred_load_groups(struct fe_cred *c, fuse_req_t req)
{
    int n = fuse_req_getgroups(req, FE_GROUPS_INLINE, c->inline_groups);

    if (n <= 0)
        return;
    if (n <= FE_GROUPS_INLINE) {
        c->cr.groups = c->inline_groups;
        c->cr.ngroups = (unsigned)n;
        return;
    }
    c->heap_groups = malloc((size_t)n * sizeof(gid_t));
    if (!c->heap_groups) {
        c->cr.groups = c->inline_groups;
        c->cr.ngroups = FE_GROUPS_INLINE;
        return;
    }
    int again = fuse_req_getgroups(req, n, c->heap_groups);
    c->cr.groups = c->heap_groups;
    c->cr.ngroups = again < 0 ? 0u : (unsigned)(again < n ? again : n);
}

/* The core asks for the groups only when a group check needs them: most
 * requests (the owner's, root's) never read /proc. */
static void fe_cred_lazy_groups(const struct uext4_cred *cr, const gid_t **groups,
                                unsigned *ngroups)
{
    struct fe_cred *c = (struct fe_cred *)((char *)cr - offsetof(struct fe_cred, cr));

    fe_cred_load_groups(c, c->req);
    *groups = c->cr.groups;
    *ngroups = c->cr.ngroups;
}

/* Whether process @pid holds CAP_FSETID, from its CapEff line. A process
 * we cannot look at (gone, in another pid namespace, no /proc) is taken to
 * hold it: uid 0 kept its setuid/setgid before the kernel marked requests,
 * and a mark, where there is one, is what decides. */
static bool fe_proc_has_fsetid(pid_t pid)
{
    char path[64], line[256];
    bool has = true;
    FILE *f;

    if (pid <= 0)
        return true;
    snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
    f = fopen(path, "re");
    if (!f)
        return true;
    while (fgets(line, sizeof(line), f)) {
        uint64_t eff;

        if (strncmp(line, "CapEff:", 7) == 0 && sscanf(line + 7, "%" SCNx64, &eff) == 1) {
            has = (eff >> CAP_FSETID_BIT) & 1;
            break;
        }
    }
    fclose(f);
    return has;
}

/* The kernel's own word where the request carries one (a write, a
 * truncation); the caller's capabilities otherwise (fallocate,
 * copy_file_range, for which the kernel leaves the decision to us). */
static bool fe_cred_has_fsetid(const struct uext4_cred *cr)
{
    const struct fe_cred *c =
        (const struct fe_cred *)((const char *)cr - offsetof(struct fe_cred, cr));

    if (c->kill != FE_KILL_UNKNOWN)
        return c->kill == FE_KILL_NO;
    return fe_proc_has_fsetid(fuse_req_ctx(c->req)->pid);
}

void fe_cred_init(struct fe_cred *c, fuse_req_t req, bool want_groups)
{
    const struct fuse_ctx *ctx = fuse_req_ctx(req);

    c->cr.uid = ctx->uid;
    c->cr.gid = ctx->gid;
    /* Valid because init enables FUSE_CAP_DONT_MASK: the kernel leaves the
     * umask to us, so the core can skip it when a default ACL applies. */
    c->cr.umask = ctx->umask;
    c->cr.ngroups = 0;
    c->cr.groups = NULL;
    c->heap_groups = NULL;
    c->req = req;
    c->cr.load_groups = want_groups ? fe_cred_lazy_groups : NULL;
    c->kill = fe_wire_kill_mark(&fe_ctx(req)->wire);
    c->cr.has_fsetid = fe_cred_has_fsetid;
}

void fe_cred_release(struct fe_cred *c)
{
    free(c->heap_groups);
    c->heap_groups = NULL;
}
