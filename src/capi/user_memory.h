// Checks on pointers a caller hands us, so that a bad one is EFAULT (as the kernel would say),
// never a crash inside the library.
#ifndef LOOPFAST_CAPI_USER_MEMORY_H_
#define LOOPFAST_CAPI_USER_MEMORY_H_

#include <cstddef>

namespace loopfast {

// Copies `size` bytes from `source`; false when any of them is not readable.
bool CopyFromUser(void *destination, const void *source, size_t size);
// True when `size` bytes at `address` can be written.
bool UserWritable(void *address, size_t size);

}  // namespace loopfast

#endif  // LOOPFAST_CAPI_USER_MEMORY_H_
