/* probe.h — telling a dead process from a slow or unreachable one.
 *
 * A node whose process died leaves its port closed: a connection attempt
 * is refused (RST) at once. A node that is partitioned, overloaded or
 * paused gives no answer or a late one. mgmtd takes a node out before its
 * lease lapses only on a refusal it saw itself (MG_REPORT_DOWN). */
#ifndef VALORFS_MGMTD_PROBE_H
#define VALORFS_MGMTD_PROBE_H

#include <stdbool.h>

/* True only when a TCP connection to addr ("a.b.c.d:port") is refused
 * within timeout_ms; false when it connects, times out or addr is bad. */
bool probe_port_closed(const char *addr, unsigned timeout_ms);

#endif
