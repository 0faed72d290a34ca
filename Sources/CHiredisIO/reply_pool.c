// Reply objects from small per-thread free lists (chr_reply_functions), instead of a calloc/malloc
// and a free for each: a received message is an array of three strings, eight allocations in
// hiredis's default functions. chr_io_attach installs these functions on every context's reader.
//
// The same objects hiredis's default functions (hiredis.c) build, with the same layout and
// ownership, so hiredis and our Swift code read them as usual; only where the memory comes from
// differs. Freed objects go to free lists of this thread (every reply of a context is created and
// freed on its loop thread), at most CHR_POOL_LIMIT of each kind; chr_io_loop_free empties them.
//
// Tested against hiredis's own functions in Tests/ChannelsRedisTests/HiredisIOTests.swift.

#include "hiredis_io_internal.h"

#include <stdlib.h>
#include <string.h>

enum { CHR_SMALL_ARRAY = 4, CHR_SMALL_STRING = 128, CHR_POOL_LIMIT = 4096 };

typedef struct chr_free_list {
    void *first;  // each free item starts with the pointer to the next
    size_t count;
} chr_free_list;

static _Thread_local struct {
    chr_free_list replies;   // sizeof(redisReply)
    chr_free_list arrays;    // CHR_SMALL_ARRAY element pointers
    chr_free_list strings;   // CHR_SMALL_STRING bytes
} chr_pool;

static void *chr_take(chr_free_list *list, size_t size) {
    void *item = list->first;
    if (item == NULL) return malloc(size);
    list->first = *(void **)item;
    list->count -= 1;
    return item;
}

static void chr_give(chr_free_list *list, void *item) {
    if (list->count >= CHR_POOL_LIMIT) {
        free(item);
        return;
    }
    *(void **)item = list->first;
    list->first = item;
    list->count += 1;
}

static void chr_drain(chr_free_list *list) {
    while (list->first != NULL) {
        void *item = list->first;
        list->first = *(void **)item;
        free(item);
    }
    list->count = 0;
}

static void chr_free_reply(void *object) {
    redisReply *reply = object;
    if (reply == NULL) return;
    switch (reply->type) {
    case REDIS_REPLY_ARRAY:
        if (reply->element != NULL) {
            for (size_t index = 0; index < reply->elements; index++) chr_free_reply(reply->element[index]);
            if (reply->elements <= CHR_SMALL_ARRAY) chr_give(&chr_pool.arrays, reply->element);
            else free(reply->element);
        }
        break;
    case REDIS_REPLY_ERROR:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_STRING:
        if (reply->str != NULL) {
            if (reply->len < CHR_SMALL_STRING) chr_give(&chr_pool.strings, reply->str);
            else free(reply->str);
        }
        break;
    default:
        break;
    }
    chr_give(&chr_pool.replies, reply);
}

static redisReply *chr_new_reply(int type) {
    redisReply *reply = chr_take(&chr_pool.replies, sizeof(redisReply));
    if (reply == NULL) return NULL;
    memset(reply, 0, sizeof(*reply));
    reply->type = type;
    return reply;
}

/// Links a finished child into its array, as hiredis's functions do.
static void *chr_adopt(const redisReadTask *task, redisReply *reply) {
    if (task->parent != NULL) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = reply;
    }
    return reply;
}

static void *chr_create_string(const redisReadTask *task, char *bytes, size_t length) {
    redisReply *reply = chr_new_reply(task->type);
    if (reply == NULL) return NULL;
    char *copy = length < CHR_SMALL_STRING ? chr_take(&chr_pool.strings, CHR_SMALL_STRING) : malloc(length + 1);
    if (copy == NULL) {
        chr_free_reply(reply);
        return NULL;
    }
    memcpy(copy, bytes, length);
    copy[length] = '\0';
    reply->str = copy;
    reply->len = length;
    return chr_adopt(task, reply);
}

static void *chr_create_array(const redisReadTask *task, int elements) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_ARRAY);
    if (reply == NULL) return NULL;
    if (elements > 0) {
        size_t count = (size_t)elements;
        reply->element = count <= CHR_SMALL_ARRAY
            ? chr_take(&chr_pool.arrays, CHR_SMALL_ARRAY * sizeof(redisReply *))
            : malloc(count * sizeof(redisReply *));
        if (reply->element == NULL) {
            chr_free_reply(reply);
            return NULL;
        }
        // Zeroed, as calloc would: a reply abandoned half-parsed is freed element by element.
        memset(reply->element, 0, count * sizeof(redisReply *));
    }
    reply->elements = (size_t)elements;
    return chr_adopt(task, reply);
}

static void *chr_create_integer(const redisReadTask *task, long long value) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_INTEGER);
    if (reply == NULL) return NULL;
    reply->integer = value;
    return chr_adopt(task, reply);
}

static void *chr_create_nil(const redisReadTask *task) {
    redisReply *reply = chr_new_reply(REDIS_REPLY_NIL);
    if (reply == NULL) return NULL;
    return chr_adopt(task, reply);
}

// Designated, so that a struct with other members (hiredis 1.x) cannot take them in the wrong order.
static redisReplyObjectFunctions chr_reply_functions = {
    .createString = chr_create_string,
    .createArray = chr_create_array,
    .createInteger = chr_create_integer,
    .createNil = chr_create_nil,
    .freeObject = chr_free_reply,
};

redisReplyObjectFunctions *chr_io_reply_functions(void) { return &chr_reply_functions; }

void chr_io_release_reply_pool(void) {
    chr_drain(&chr_pool.replies);
    chr_drain(&chr_pool.arrays);
    chr_drain(&chr_pool.strings);
}
