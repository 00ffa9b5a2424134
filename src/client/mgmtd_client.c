/* mgmtd_client.c — implementation in progress (see mgmtd_client.h). */
#include "client/mgmtd_client.h"
