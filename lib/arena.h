/* A bump allocator for everything one request or one command allocates:
 * handlers build protobuf responses in it and the caller frees it once.
 * It also serves as a ProtobufCAllocator so unpacking lands in it. */
#ifndef VMK_ARENA_H
#define VMK_ARENA_H

#include <stdarg.h>
#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct arena_chunk;

struct arena {
	struct arena_chunk *head;
	size_t total;          /* bytes handed out, for limits */
	size_t limit;          /* 0 = unlimited; allocations past it fail */
	ProtobufCAllocator pb; /* allocator view for protobuf-c */
};

void arena_init(struct arena *a, size_t limit);
void arena_free(struct arena *a);
/* Zeroed memory aligned for any type; NULL when out of memory or limit. */
void *arena_alloc(struct arena *a, size_t n);
/* Zeroed array of n elements of size sz; NULL on overflow. */
void *arena_calloc(struct arena *a, size_t n, size_t sz);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap);

#endif
