/*
 * Copyright (C) ngx_mitte_module authors
 *
 * The shared memory zone: endpoints and users, each in an rbtree with an
 * LRU queue, as limit_req keeps its nodes, and the users' notifications.
 * Storage only: callers hold the zone mutex around every function here
 * (ngx_http_mitte_zone_start.c makes the zone).
 */


#include "ngx_http_mitte_zone.h"


#define ngx_http_mitte_node_size(type)                                       \
    (offsetof(ngx_rbtree_node_t, color) + sizeof(type))

#define ngx_http_mitte_rbnode(p)                                             \
    ((ngx_rbtree_node_t *) ((u_char *) (p)                                   \
                            - offsetof(ngx_rbtree_node_t, color)))


/*
 * The trees' key: a multiply-xorshift hash of the name, 8 bytes at a
 * step, and the last (up to) 8 bytes in one load that may overlap the
 * step before. It costs a fraction of CRC32's table walk for the short
 * names here, and gives 64 bits, so names rarely share a key. A name of
 * at most 8 bytes is one step of bijections of its bytes (xor, multiply
 * by an odd number, xorshift): two such names of the same length have
 * the same key only if they are the same name.
 */

static ngx_inline ngx_rbtree_key_t
ngx_http_mitte_hash(u_char *p, size_t len)
{
    uint32_t  a, b;
    uint64_t  h, w;

    h = 0x9e3779b97f4a7c15ULL ^ len;

    if (len <= 8) {
        if (len >= 4) {
            ngx_memcpy(&a, p, 4);
            ngx_memcpy(&b, p + len - 4, 4);
            w = a | ((uint64_t) b << 32);

        } else if (len) {
            w = p[0] | ((uint64_t) p[len >> 1] << 8)
                | ((uint64_t) p[len - 1] << 16);

        } else {
            w = 0;
        }

    } else {
        for ( /* void */ ; len > 8; len -= 8, p += 8) {
            ngx_memcpy(&w, p, 8);
            h = (h ^ w) * 0xff51afd7ed558ccdULL;
            h ^= h >> 32;
        }

        ngx_memcpy(&w, p + len - 8, 8);
    }

    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 29;

    return (ngx_rbtree_key_t) h;
}


/* the same, for callers outside: a name's key, kept for later lookups */

ngx_rbtree_key_t
ngx_http_mitte_key(u_char *p, size_t len)
{
    return ngx_http_mitte_hash(p, len);
}


/*
 * Whether a slug is one (1-64 bytes of [A-Za-z0-9._-]), and its hash:
 * the request's slug is checked in the precontent phase and its hash
 * kept for the log phase.
 */

ngx_int_t
ngx_http_mitte_slug_hash(u_char *p, size_t len, ngx_rbtree_key_t *hash)
{
    size_t  i;
    u_char  bad;

    /* 0 for [A-Za-z0-9._-] */
    static const u_char  ok[256] = {
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1,  /* - . */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1,  /* 0-9 */
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* A-O */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0,  /* P-Z _ */
        1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* a-o */
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1,  /* p-z */
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
        1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1
    };

    if (len == 0 || len > MITTE_SLUG_MAX) {
        return NGX_DECLINED;
    }

    bad = 0;

    for (i = 0; i < len; i++) {
        bad |= ok[p[i]];
    }

    if (bad) {
        return NGX_DECLINED;
    }

    *hash = ngx_http_mitte_hash(p, len);

    return NGX_OK;
}


static ngx_int_t ngx_http_mitte_evict(ngx_http_mitte_zone_ctx_t *ctx,
    void *keep);
static void ngx_http_mitte_user_delete(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un);
static ngx_int_t ngx_http_mitte_tree_cmp(ngx_rbtree_node_t *node,
    ngx_http_mitte_key_pt key, ngx_rbtree_key_t hash, u_char *data,
    size_t len);
static void ngx_http_mitte_notes_free(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un);
static ngx_rbtree_node_t *ngx_http_mitte_cached(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_uint_t tree, ngx_rbtree_key_t hash, u_char *data, size_t len);
static void ngx_http_mitte_cache_put(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_uint_t tree, ngx_rbtree_node_t *node);
static ngx_inline ngx_http_mitte_endpoint_node_t *ngx_http_mitte_endpoint_at(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *slug, size_t len,
    ngx_rbtree_key_t hash);
static ngx_inline ngx_http_mitte_user_node_t *ngx_http_mitte_user_at(
    ngx_http_mitte_zone_ctx_t *ctx, u_char *id, size_t len,
    ngx_rbtree_key_t hash);


/*
 * Per process: the nodes found last, by the low bits of their key, so
 * that a name looked up again is found without walking the tree. An entry
 * holds while the zone's "gen" (bumped whenever an endpoint or a user is
 * freed) is what it was when the entry was made: the node is then still
 * there, and still holds that name (names of nodes never change).
 */

#define NGX_HTTP_MITTE_CACHE_BITS  12
#define NGX_HTTP_MITTE_CACHE_SIZE  (1 << NGX_HTTP_MITTE_CACHE_BITS)

/* an entry by the key's top bits, the best mixed */
#define ngx_http_mitte_cache_slot(key)                                       \
    ((key) >> (sizeof(ngx_rbtree_key_t) * 8 - NGX_HTTP_MITTE_CACHE_BITS))
#define NGX_HTTP_MITTE_CACHE_EP    0
#define NGX_HTTP_MITTE_CACHE_USER  1

typedef struct {
    ngx_rbtree_key_t            key;
    ngx_rbtree_node_t          *node;
    uint64_t                    gen;
} ngx_http_mitte_cache_t;

static ngx_http_mitte_cache_t  ngx_http_mitte_cache[2]
                                   [NGX_HTTP_MITTE_CACHE_SIZE];


/* a zone made or taken over in this process: what it found is moot */

void
ngx_http_mitte_cache_reset(void)
{
    ngx_memzero(ngx_http_mitte_cache, sizeof(ngx_http_mitte_cache));
}


/*
 * Both trees are keyed by ngx_http_mitte_hash() of a name (slug, user
 * id), and ordered by the name's bytes among equal keys.
 */

void
ngx_http_mitte_endpoint_key(ngx_rbtree_node_t *node, ngx_str_t *name)
{
    ngx_http_mitte_endpoint_node_t  *en;

    en = (ngx_http_mitte_endpoint_node_t *) &node->color;

    name->data = en->ep.slug;
    name->len = en->slug_len;
}


void
ngx_http_mitte_user_key(ngx_rbtree_node_t *node, ngx_str_t *name)
{
    ngx_http_mitte_user_node_t  *un;

    un = (ngx_http_mitte_user_node_t *) &node->color;

    name->data = un->user.id;
    name->len = un->user.id_len;
}


/* -1, 0, 1 as (hash, name) sorts before, at or after the node */

static ngx_int_t
ngx_http_mitte_tree_cmp(ngx_rbtree_node_t *node, ngx_http_mitte_key_pt key,
    ngx_rbtree_key_t hash, u_char *data, size_t len)
{
    ngx_str_t  name;

    if (hash != node->key) {
        return (hash < node->key) ? -1 : 1;
    }

    key(node, &name);

    return ngx_memn2cmp(data, name.data, len, name.len);
}


static void
ngx_http_mitte_tree_insert(ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel, ngx_http_mitte_key_pt key)
{
    ngx_str_t            name;
    ngx_rbtree_node_t  **p;

    key(node, &name);

    for ( ;; ) {

        p = (ngx_http_mitte_tree_cmp(temp, key, node->key, name.data,
                                     name.len) < 0)
            ? &temp->left : &temp->right;

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


void
ngx_http_mitte_endpoint_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_mitte_tree_insert(temp, node, sentinel,
                               ngx_http_mitte_endpoint_key);
}


void
ngx_http_mitte_user_insert(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_http_mitte_tree_insert(temp, node, sentinel, ngx_http_mitte_user_key);
}


static ngx_rbtree_node_t *
ngx_http_mitte_tree_lookup(ngx_rbtree_t *tree, ngx_http_mitte_key_pt key,
    ngx_rbtree_key_t hash, u_char *data, size_t len)
{
    ngx_int_t           rc;
    ngx_str_t           name;
    ngx_rbtree_node_t  *node;

    for (node = tree->root; node != tree->sentinel; /* void */ ) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        key(node, &name);

        rc = ngx_memn2cmp(data, name.data, len, name.len);

        if (rc == 0) {
            return node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


/* the cached node of (hash, name), or NULL; with the zone locked */

static ngx_rbtree_node_t *
ngx_http_mitte_cached(ngx_http_mitte_zone_ctx_t *ctx, ngx_uint_t tree,
    ngx_rbtree_key_t hash, u_char *data, size_t len)
{
    u_char                  *name, nlen;
    ngx_http_mitte_cache_t  *c;

    c = &ngx_http_mitte_cache[tree][ngx_http_mitte_cache_slot(hash)];

    if (c->node == NULL || c->key != hash || c->gen != ctx->sh->gen) {
        return NULL;
    }

    if (tree == NGX_HTTP_MITTE_CACHE_EP) {
        nlen = ((ngx_http_mitte_endpoint_node_t *) &c->node->color)->slug_len;
        name = ((ngx_http_mitte_endpoint_node_t *) &c->node->color)->ep.slug;

    } else {
        nlen = ((ngx_http_mitte_user_node_t *) &c->node->color)->user.id_len;
        name = ((ngx_http_mitte_user_node_t *) &c->node->color)->user.id;
    }

    if (nlen != len) {
        return NULL;
    }

    /* up to 8 bytes, the same 64-bit key and length are the same name */

    if ((len > 8 || sizeof(ngx_rbtree_key_t) < 8)
        && ngx_memcmp(data, name, len) != 0)
    {
        return NULL;
    }

    return c->node;
}


static void
ngx_http_mitte_cache_put(ngx_http_mitte_zone_ctx_t *ctx, ngx_uint_t tree,
    ngx_rbtree_node_t *node)
{
    ngx_http_mitte_cache_t  *c;

    c = &ngx_http_mitte_cache[tree][ngx_http_mitte_cache_slot(node->key)];

    c->key = node->key;
    c->node = node;
    c->gen = ctx->sh->gen;
}


/*
 * The first node after (hash, name) in the tree's order, for walks that
 * let go of the lock between steps: the node at the cursor may be gone.
 */

ngx_rbtree_node_t *
ngx_http_mitte_tree_after(ngx_rbtree_t *tree, ngx_http_mitte_key_pt key,
    ngx_rbtree_key_t hash, u_char *name, size_t len)
{
    ngx_rbtree_node_t  *node, *found;

    node = tree->root;
    found = NULL;

    while (node != tree->sentinel) {

        if (ngx_http_mitte_tree_cmp(node, key, hash, name, len) < 0) {
            found = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return found;
}


/*
 * Allocates from the zone; when it is full, evicts the least recently used
 * endpoint (then user), never "keep" nor the most recently used of either
 * kind (the ones the caller is working on), and tries again.
 */

void *
ngx_http_mitte_alloc(ngx_http_mitte_zone_ctx_t *ctx, size_t size, void *keep)
{
    void        *p;
    ngx_uint_t   i;

    for (i = 0; i < 64; i++) {
        p = ngx_slab_alloc_locked(ctx->shpool, size);
        if (p) {
            return p;
        }

        if (ngx_http_mitte_evict(ctx, keep) != NGX_OK) {
            break;
        }
    }

    ctx->sh->counters.nomem++;

    return NULL;
}


static ngx_int_t
ngx_http_mitte_evict(ngx_http_mitte_zone_ctx_t *ctx, void *keep)
{
    ngx_queue_t                     *q;
    ngx_http_mitte_user_node_t      *un;
    ngx_http_mitte_endpoint_node_t  *en;

    for (q = ngx_queue_last(&ctx->sh->ep_lru);
         q != ngx_queue_sentinel(&ctx->sh->ep_lru);
         q = ngx_queue_prev(q))
    {
        en = ngx_queue_data(q, ngx_http_mitte_endpoint_node_t, queue);

        if (q == ngx_queue_head(&ctx->sh->ep_lru)) {
            break;
        }

        if ((void *) en != keep) {
            ngx_http_mitte_endpoint_delete(ctx, en);
            ctx->sh->counters.evicted_endpoints++;
            return NGX_OK;
        }
    }

    for (q = ngx_queue_last(&ctx->sh->user_lru);
         q != ngx_queue_sentinel(&ctx->sh->user_lru);
         q = ngx_queue_prev(q))
    {
        un = ngx_queue_data(q, ngx_http_mitte_user_node_t, queue);

        if (q == ngx_queue_head(&ctx->sh->user_lru)) {
            break;
        }

        if ((void *) un != keep) {
            ngx_http_mitte_user_delete(ctx, un);
            ctx->sh->counters.evicted_users++;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


ngx_http_mitte_endpoint_node_t *
ngx_http_mitte_endpoint_lookup(ngx_http_mitte_zone_ctx_t *ctx, u_char *slug,
    size_t len)
{
    return ngx_http_mitte_endpoint_at(ctx, slug, len,
                                      ngx_http_mitte_hash(slug, len));
}


/*
 * The endpoint of a slug whose ngx_http_mitte_hash() the caller has: the
 * cache, then the tree; inline, so that the request's path makes no call
 */

static ngx_inline ngx_http_mitte_endpoint_node_t *
ngx_http_mitte_endpoint_at(ngx_http_mitte_zone_ctx_t *ctx, u_char *slug,
    size_t len, ngx_rbtree_key_t hash)
{
    ngx_rbtree_node_t  *node;

    node = ngx_http_mitte_cached(ctx, NGX_HTTP_MITTE_CACHE_EP, hash, slug,
                                 len);

    if (node == NULL) {
        node = ngx_http_mitte_tree_lookup(&ctx->sh->ep_rbtree,
                                          ngx_http_mitte_endpoint_key, hash,
                                          slug, len);
        if (node == NULL) {
            return NULL;
        }

        ngx_http_mitte_cache_put(ctx, NGX_HTTP_MITTE_CACHE_EP, node);
    }

    return (ngx_http_mitte_endpoint_node_t *) &node->color;
}


/* finds or creates an endpoint, and marks it the most recently used */

ngx_http_mitte_endpoint_node_t *
ngx_http_mitte_endpoint_get(ngx_http_mitte_zone_ctx_t *ctx, u_char *slug,
    size_t len)
{
    return ngx_http_mitte_endpoint_get_hash(ctx, slug, len,
                                            ngx_http_mitte_hash(slug, len));
}


ngx_http_mitte_endpoint_node_t *
ngx_http_mitte_endpoint_get_hash(ngx_http_mitte_zone_ctx_t *ctx,
    u_char *slug, size_t len, ngx_rbtree_key_t hash)
{
    ngx_rbtree_node_t               *node;
    ngx_http_mitte_endpoint_node_t  *en;

    en = ngx_http_mitte_endpoint_at(ctx, slug, len, hash);

    if (en) {
        if (ngx_queue_prev(&en->queue) == &ctx->sh->ep_lru) {
            /* the most recently used already */
            return en;
        }

        ngx_queue_remove(&en->queue);
        ngx_queue_insert_head(&ctx->sh->ep_lru, &en->queue);
        return en;
    }

    if (len == 0 || len > MITTE_SLUG_MAX) {
        return NULL;
    }

    node = ngx_http_mitte_alloc(ctx,
                       ngx_http_mitte_node_size(ngx_http_mitte_endpoint_node_t),
                       NULL);
    if (node == NULL) {
        return NULL;
    }

    en = (ngx_http_mitte_endpoint_node_t *) &node->color;

    ngx_memzero(en, sizeof(ngx_http_mitte_endpoint_node_t));

    node->key = hash;
    en->slug_len = (u_char) len;
    ngx_memcpy(en->ep.slug, slug, len);
    mitte_ring_init(&en->ep.ring);

    ngx_rbtree_insert(&ctx->sh->ep_rbtree, node);
    ngx_queue_insert_head(&ctx->sh->ep_lru, &en->queue);

    ngx_http_mitte_cache_put(ctx, NGX_HTTP_MITTE_CACHE_EP, node);

    ctx->sh->counters.endpoints++;

    return en;
}


void
ngx_http_mitte_endpoint_delete(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en)
{
    if (en->delta) {
        /* deltas not sent yet (cluster mode): lost with the endpoint */
        ngx_http_mitte_delta_done(ctx, en->delta);
        (void) ngx_atomic_fetch_add(&ctx->sh->cluster.dropped, 1);
    }

    if (en->ep.name_off) {
        ngx_slab_free_locked(ctx->shpool,
                             (u_char *) ctx->shpool + en->ep.name_off);
    }

    ngx_queue_remove(&en->queue);
    ngx_rbtree_delete(&ctx->sh->ep_rbtree, ngx_http_mitte_rbnode(en));
    ngx_slab_free_locked(ctx->shpool, ngx_http_mitte_rbnode(en));

    /* every process's cached nodes are moot */
    ctx->sh->gen++;

    ctx->sh->counters.endpoints--;
}


ngx_int_t
ngx_http_mitte_endpoint_set_user(ngx_http_mitte_endpoint_node_t *en,
    ngx_str_t *user)
{
    if (user->len > MITTE_USER_MAX) {
        return NGX_ERROR;
    }

    if (user->len == en->user_len
        && ngx_http_mitte_same(user->data, en->ep.user, user->len))
    {
        return NGX_OK;
    }

    ngx_memcpy(en->ep.user, user->data, user->len);
    en->user_len = (u_char) user->len;

    return NGX_OK;
}


/*
 * The display name lives in its own allocation, and only when it differs
 * from the slug, so that an endpoint node stays at 512 bytes.
 */

void
ngx_http_mitte_endpoint_set_name(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_str_t *name)
{
    u_char      *p;
    ngx_uint_t   slug;

    if (name->len > MITTE_NAME_MAX) {
        return;
    }

    slug = (name->len == 0
            || (name->len == en->slug_len
                && ngx_memcmp(name->data, en->ep.slug, name->len) == 0));

    if (en->ep.name_off) {
        p = (u_char *) ctx->shpool + en->ep.name_off;

        if (!slug && name->len == en->name_len
            && ngx_memcmp(p, name->data, name->len) == 0)
        {
            return;
        }

        ngx_slab_free_locked(ctx->shpool, p);
        en->ep.name_off = 0;
        en->name_len = 0;
    }

    if (slug) {
        return;
    }

    p = ngx_http_mitte_alloc(ctx, name->len, en);
    if (p == NULL) {
        return;
    }

    ngx_memcpy(p, name->data, name->len);

    en->ep.name_off = (uint32_t) (p - (u_char *) ctx->shpool);
    en->name_len = (u_char) name->len;
}


void
ngx_http_mitte_endpoint_name(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_str_t *name)
{
    if (en->ep.name_off) {
        name->data = (u_char *) ctx->shpool + en->ep.name_off;
        name->len = en->name_len;

    } else {
        name->data = en->ep.slug;
        name->len = en->slug_len;
    }
}


/* with the zone locked: what a reader needs, to write it without the lock */

void
ngx_http_mitte_endpoint_copy(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en, ngx_http_mitte_endpoint_copy_t *copy)
{
    copy->ep = en->ep;
    copy->last_status = en->last_status;
    copy->slug_len = en->slug_len;
    copy->user_len = en->user_len;
    copy->name_len = en->ep.name_off ? en->name_len : 0;

    if (copy->name_len) {
        ngx_memcpy(copy->name, (u_char *) ctx->shpool + en->ep.name_off,
                   copy->name_len);
    }
}


ngx_http_mitte_user_node_t *
ngx_http_mitte_user_lookup(ngx_http_mitte_zone_ctx_t *ctx, u_char *id,
    size_t len)
{
    return ngx_http_mitte_user_at(ctx, id, len, ngx_http_mitte_hash(id, len));
}


/* the user of an id whose ngx_http_mitte_key() the caller has, as above */

static ngx_inline ngx_http_mitte_user_node_t *
ngx_http_mitte_user_at(ngx_http_mitte_zone_ctx_t *ctx, u_char *id,
    size_t len, ngx_rbtree_key_t hash)
{
    ngx_rbtree_node_t  *node;

    node = ngx_http_mitte_cached(ctx, NGX_HTTP_MITTE_CACHE_USER, hash, id,
                                 len);

    if (node == NULL) {
        node = ngx_http_mitte_tree_lookup(&ctx->sh->user_rbtree,
                                          ngx_http_mitte_user_key, hash, id,
                                          len);
        if (node == NULL) {
            return NULL;
        }

        ngx_http_mitte_cache_put(ctx, NGX_HTTP_MITTE_CACHE_USER, node);
    }

    return (ngx_http_mitte_user_node_t *) &node->color;
}


ngx_http_mitte_user_node_t *
ngx_http_mitte_user_get(ngx_http_mitte_zone_ctx_t *ctx, u_char *id,
    size_t len, void *keep)
{
    return ngx_http_mitte_user_get_hash(ctx, id, len,
                                        ngx_http_mitte_hash(id, len), keep);
}


ngx_http_mitte_user_node_t *
ngx_http_mitte_user_get_hash(ngx_http_mitte_zone_ctx_t *ctx, u_char *id,
    size_t len, ngx_rbtree_key_t hash, void *keep)
{
    ngx_rbtree_node_t           *node;
    ngx_http_mitte_user_node_t  *un;

    un = ngx_http_mitte_user_at(ctx, id, len, hash);

    if (un) {
        if (ngx_queue_prev(&un->queue) != &ctx->sh->user_lru) {
            ngx_queue_remove(&un->queue);
            ngx_queue_insert_head(&ctx->sh->user_lru, &un->queue);
        }

        un->user.seen = (uint32_t) ngx_time();
        return un;
    }

    if (len == 0 || len > MITTE_USER_MAX) {
        return NULL;
    }

    node = ngx_http_mitte_alloc(ctx,
                           ngx_http_mitte_node_size(ngx_http_mitte_user_node_t),
                           keep);
    if (node == NULL) {
        return NULL;
    }

    un = (ngx_http_mitte_user_node_t *) &node->color;

    ngx_memzero(un, sizeof(ngx_http_mitte_user_node_t));

    node->key = hash;
    ngx_queue_init(&un->notes);
    un->user.id_len = (uint8_t) len;
    ngx_memcpy(un->user.id, id, len);
    un->user.seen = (uint32_t) ngx_time();

    ngx_rbtree_insert(&ctx->sh->user_rbtree, node);
    ngx_queue_insert_head(&ctx->sh->user_lru, &un->queue);

    ngx_http_mitte_cache_put(ctx, NGX_HTTP_MITTE_CACHE_USER, node);

    ctx->sh->counters.users++;

    return un;
}


static void
ngx_http_mitte_user_delete(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un)
{
    ngx_http_mitte_notes_free(ctx, un);

    if (un->prefs_off) {
        ngx_slab_free_locked(ctx->shpool,
                             (u_char *) ctx->shpool + un->prefs_off);
    }

    ngx_queue_remove(&un->queue);
    ngx_rbtree_delete(&ctx->sh->user_rbtree, ngx_http_mitte_rbnode(un));
    ngx_slab_free_locked(ctx->shpool, ngx_http_mitte_rbnode(un));

    /* every process's cached nodes are moot */
    ctx->sh->gen++;

    ctx->sh->counters.users--;
}


/*
 * An event stream opens (n = 1) or closes (n = -1), or one is open on
 * another instance (n = 0): "all", or the user's
 * bucket. Buckets that users share only keep more events, never fewer.
 */

void
ngx_http_mitte_watch(ngx_http_mitte_zone_ctx_t *ctx, u_char *user,
    size_t len, ngx_uint_t all, ngx_int_t n)
{
    ngx_http_mitte_watch_t  *w;

    w = all ? &ctx->sh->watch_all
            : &ctx->sh->watch[ngx_http_mitte_watch_slot(
                                  ngx_http_mitte_hash(user, len))];

    if (n > 0) {
        w->open++;
        return;
    }

    if (n == 0) {
        /* a stream open on another instance: kept as if it closed now */
        w->closed = (uint32_t) ngx_time();
        return;
    }

    if (w->open) {
        w->open--;
    }

    w->closed = (uint32_t) ngx_time();
}


/* a new month starts the quota over */

void
ngx_http_mitte_user_roll(ngx_http_mitte_user_t *u, int64_t now)
{
    uint32_t  month;

    /* the calendar once per second and process */
    static int64_t   cached_now = -1;
    static uint32_t  cached_month;

    if (now != cached_now) {
        cached_month = mitte_month_of(now);
        cached_now = now;
    }

    month = cached_month;

    if (u->month != month) {
        u->month = month;
        u->used = 0;
        u->flags &= ~(NGX_HTTP_MITTE_USER_WARNED
                      |NGX_HTTP_MITTE_USER_EXCEEDED);
    }
}


static void
ngx_http_mitte_notes_free(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_user_node_t *un)
{
    ngx_queue_t                 *q;
    ngx_http_mitte_note_node_t  *nn;

    while (!ngx_queue_empty(&un->notes)) {
        q = ngx_queue_last(&un->notes);
        nn = ngx_queue_data(q, ngx_http_mitte_note_node_t, queue);

        ngx_queue_remove(q);
        ngx_slab_free_locked(ctx->shpool, nn);
    }

    un->nnotes = 0;
    un->unread = 0;
}


/*
 * Cluster mode, with the zone locked: the endpoint's deltas not yet sent,
 * made (in the dirty list) at its first delivery since the last flush;
 * NULL when the zone has no room for them.
 */

ngx_http_mitte_delta_t *
ngx_http_mitte_delta_get(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_endpoint_node_t *en)
{
    ngx_queue_t             *q;
    ngx_http_mitte_sh_t     *sh;
    ngx_http_mitte_delta_t  *d;

    if (en->delta) {
        return en->delta;
    }

    sh = ctx->sh;

    if (!ngx_queue_empty(&sh->delta_free)) {
        q = ngx_queue_head(&sh->delta_free);
        ngx_queue_remove(q);
        sh->ndelta_free--;
        d = ngx_queue_data(q, ngx_http_mitte_delta_t, queue);

    } else {
        /* not ngx_http_mitte_alloc(): no endpoint is evicted for it */
        d = ngx_slab_alloc_locked(ctx->shpool,
                                  sizeof(ngx_http_mitte_delta_t));
        if (d == NULL) {
            return NULL;
        }
    }

    ngx_memzero(d, sizeof(ngx_http_mitte_delta_t));
    d->en = en;
    d->since = ngx_current_msec;
    en->delta = d;

    if (sh->ndirty++ == 0) {
        sh->dirty_since = d->since;
    }

    ngx_queue_insert_tail(&sh->dirty, &d->queue);

    return d;
}


/*
 * With the zone locked: the deltas taken (or lost), back to the free list
 * (or the slab, past NGX_HTTP_MITTE_DELTA_FREE_MAX: an outage's backlog
 * does not keep its memory from the endpoints for good)
 */

void
ngx_http_mitte_delta_done(ngx_http_mitte_zone_ctx_t *ctx,
    ngx_http_mitte_delta_t *d)
{
    ngx_http_mitte_sh_t  *sh;

    sh = ctx->sh;

    d->en->delta = NULL;

    ngx_queue_remove(&d->queue);

    if (sh->ndelta_free < NGX_HTTP_MITTE_DELTA_FREE_MAX) {
        ngx_queue_insert_head(&sh->delta_free, &d->queue);
        sh->ndelta_free++;

    } else {
        ngx_slab_free_locked(ctx->shpool, d);
    }

    if (--sh->ndirty) {
        d = ngx_queue_data(ngx_queue_head(&sh->dirty), ngx_http_mitte_delta_t,
                           queue);
        sh->dirty_since = d->since;
    }
}
