/*
 * The contract's floor for secretd-null --floor: the least work any broker
 * that keeps the contract must do for a get beyond the socket round trip.
 * The value is stored sealed, so it is opened (ChaCha20-Poly1305 under a key
 * already derived, as a broker that keeps a row's subkey does); every
 * request has an audit record, MAC-chained to the one before (keyed BLAKE2b
 * from a state keyed once); and the records of a turn go to the log in one
 * write(2) before any of their answers is sent.  No identity, policy, vault
 * lookup, rate limit, metrics or fsync, which the contract asks of a broker
 * too: so this is an upper bound of any broker's ratio, and what is left
 * between it and secretd is those, and the broker's own code.
 */
#ifndef SECRETD_BENCH_FLOOR_H
#define SECRETD_BENCH_FLOOR_H

#include <stddef.h>
#include <stdint.h>

/* Open (append, create) the log at path and seal the value.  0 or -1. */
int floor_open(const char *path);

/*
 * One get: open the value, encode its answer at out (cap bytes free), and
 * queue its record.  The answer's length, or 0 when it does not fit (in
 * out, or in the records queued for this turn) and must wait for the next.
 */
size_t floor_answer(uint8_t *out, size_t cap);

/* Write the queued records in one write(2).  0, or -1 (answer nobody). */
int floor_write(void);

#endif
