/* schakel adapter: how an organisation plugs its existing system into the
 * bus without writing code. One program, configured per organisation by a
 * JSON file (docs/adapters.md):
 *
 *   {"org": "school-12ab00",
 *    "key": "keys/school-12ab00.key", "server_key": "keys/broker.pub",
 *    "endpoint": "tcp://bus.example:7400", "pub": "tcp://bus.example:7401",
 *    "region_key": "keys/region.key",
 *    "profile": "profiles/school/profile.json",
 *    "state": "state", "spool": "spool",
 *    "http": "127.0.0.1:7480",
 *    "inbox": {"dir": "inbox"}}
 *
 * ("node": DIR takes endpoints and keys from a node directory instead.)
 * Paths are relative to the configuration file.
 *
 * In: files dropped in the spool (CSV, JSON lines), standard input (JSON
 * lines), and POST /events on the local HTTP endpoint (for the holder of
 * the token in a 0600 file; never a web page: Host and Origin must be the
 * endpoint's own, the body application/json); every row is mapped
 * by the profile (BSN to pseudonym inside the adapter) and made durable in
 * the outbox before it is acknowledged; a file moves to spool/done/ only
 * then, its bad rows to spool/rejected/ with a reason each. The outbox is
 * forwarded to the broker with retries until ACKed.
 * Out: what the bus delivers to the organisation (org/<id>) is handed to
 * its system: JSON files in an inbox directory, a command, or a local URL;
 * the cursor moves only after the hand-over succeeded. */
#ifndef SCHAKEL_ADAPTER_H
#define SCHAKEL_ADAPTER_H

/* `schakel adapter ...`: run, status, check. Returns the exit code. */
int schakel_adapter_cli(int argc, char **argv);

#endif
