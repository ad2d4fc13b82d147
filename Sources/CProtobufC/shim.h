// The protobuf-c runtime (Debian: libprotobuf-c-dev), imported as a system library.
#include <protobuf-c/protobuf-c.h>
