// Forwarding header: configuration and logging live in src/config (below every layer that uses
// them). Include "config/config.h" instead; this stays only for files not yet switched over.
#ifndef LOOPFAST_SOCKET_CONFIG_H_
#define LOOPFAST_SOCKET_CONFIG_H_

#include "config/config.h"

#endif  // LOOPFAST_SOCKET_CONFIG_H_
