/* Secret names: the one rule shared by the broker and the client. */
#ifndef SECRETD_NAMES_H
#define SECRETD_NAMES_H

#include <stdbool.h>
#include <stddef.h>

#define NAME_MAX_LEN 255

/*
 * A name is 1..255 bytes of A-Z a-z 0-9 . _ - /, made of '/'-separated
 * segments, none empty, none "." or "..".  On false, *why (if not NULL) gets
 * a short static reason that never quotes the input.
 */
bool name_valid(const char *name, size_t len, const char **why);

/*
 * A watch pattern (policy pattern syntax): 1..255 bytes of the name alphabet
 * and '*', '/'-separated segments, none empty, none "." or "..".  Whether
 * the broker accepts every use of '*' is the broker's to say.
 */
bool pattern_valid(const char *pattern, size_t len, const char **why);

#endif
