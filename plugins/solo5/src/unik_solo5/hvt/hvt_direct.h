/* The guest runtime's direct entry (runtime.c's hvt_direct, called by direct.c's wrappers
 * of libc's system calls instead of a trap): what it answers when the call must trap. */
#ifndef UNIK_HVT_DIRECT_H
#define UNIK_HVT_DIRECT_H

/* Outside every result a system call returns (-4095..-1 are errors): make the real system call. */
#define HVT_DIRECT_TRAP (-4096L - 1)

#endif
