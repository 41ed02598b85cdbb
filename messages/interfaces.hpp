#pragma once

// The typed actor interfaces of objstore. Every remote interaction goes
// through one of these, so the compiler checks each message and CAF refuses
// to connect mismatched peers (`unexpected_actor_messaging_interface`).
//
// Errors are `objstore::errc` codes (store/error.hpp) in `caf::error`.
// "Idempotent" means sending the same request twice has the effect of
// sending it once.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "messages/atoms.hpp"
#include "messages/protocol.hpp"

namespace objstore {

/// The front door of a worker node: what drivers (and the operator CLI)
/// talk to. A session is a capability (DESIGN.md §12): `hello` opens one and
/// replies its `session_key`; every other session-scoped request carries
/// that key and is refused with `permission_denied` (changing nothing) when
/// the id is unknown or the secret wrong. The worker monitors the actor that
/// opened a session and drops the session's holds when it goes down.
using worker_actor = caf::typed_actor<
    /// Opens a new session for the sender and replies its key. Not
    /// idempotent (a new session each time). Errors: unauthenticated
    /// (anonymous sender), permission_denied (wrong operator secret),
    /// resource_exhausted (too many sessions).
    caf::replies_to<hello_atom, hello_request>::with<session_info>,
    /// Stores a driver value; the session holds it and may fetch it under
    /// `revealed-only`. Not idempotent (a new mem:// id each time). Errors:
    /// invalid_uri, unsupported_scheme, permission_denied (fs root, or
    /// another session's fs:// object), resource_exhausted, io_error.
    caf::replies_to<put_atom, session_key, put_request>::with<std::string>,
    /// Runs a graph on this worker's values; replies output URIs held by the
    /// session. Not idempotent. Errors: invalid_uri, not_found and
    /// permission_denied (inputs), op_failed (naming the op), cancelled,
    /// resource_exhausted.
    caf::replies_to<run_atom, session_key, task_request>::with<task_reply>,
    /// Asks the session's running task `task_id` (as numbered in its
    /// task_request) to stop at the next op boundary or kernel poll; the
    /// run then fails with `cancelled`, its inputs are unpinned and no
    /// output is stored. Replies whether such a task was running (false
    /// for finished, unknown or other sessions' tasks). Idempotent.
    caf::replies_to<cancel_atom, session_key, uint64_t>::with<bool>,
    /// Returns an object's value if the fetch policy allows it. Idempotent.
    /// Errors: invalid_uri, not_found, permission_denied.
    caf::replies_to<fetch_atom, session_key, std::string>::with<wire_value>,
    /// `fetch` for values that may be large: a value of at least
    /// `stream_threshold` payload bytes is not in the reply; the reply
    /// carries a one-use grant to pull it from this node's data port
    /// (DESIGN.md §12), valid for the session and a minute at least. The
    /// grant holds the value, so a release meanwhile cannot free it.
    /// Smaller values, and every value of a node without a data plane,
    /// come in the reply. Errors as `fetch`, resource_exhausted (too many
    /// unused grants and tokens).
    caf::replies_to<fetch_atom, session_key, std::string,
                    uint64_t>::with<fetch_reply>,
    /// Drops one hold of the session per listed URI (batched). Not
    /// idempotent; unknown or excess releases are counted, never fatal. A
    /// release with a wrong key is counted as refused and changes nothing.
    caf::reacts_to<release_atom, session_key, std::vector<std::string>>,
    /// Erases an fs:// object the session may write (or a mem:// object
    /// the session holds). Idempotent except for the reply. Errors:
    /// invalid_uri, not_found, permission_denied.
    caf::replies_to<erase_atom, session_key, std::string>::with<bool>,
    /// Counters: node-wide for an operator session; otherwise the object
    /// counts are the session's own (mem_objects, mem_bytes, pins) and no
    /// other session's numbers are shown. Idempotent.
    caf::replies_to<stats_atom, session_key>::with<worker_stats>,
    /// Object listing with holders, pins and age: the session's own
    /// objects, or every object for an operator session. Holders are named
    /// by session id and client label, never by address. Idempotent.
    caf::replies_to<objects_atom,
                    session_key>::with<std::vector<object_record>>,
    /// Closes the session, dropping all its holds and cancelling its tasks;
    /// replies how many holds were dropped. Idempotent.
    caf::replies_to<close_atom, session_key>::with<uint64_t>,
    /// Liveness probe. Idempotent. No session needed.
    caf::replies_to<ping_atom>::with<ping_atom>,
    /// Who this worker is for a peer worker (rank, node id, data port).
    /// Idempotent. No session needed: it reveals only the data port.
    caf::replies_to<peer_atom>::with<peer_info>,
    /// Prepares an inbound transfer for the session; replies the one-shot
    /// token a source must present on this node's data port. Not
    /// idempotent (a new token each time). Errors: resource_exhausted (the
    /// session or the node holds too many unused tokens).
    caf::replies_to<expect_atom, session_key>::with<std::string>,
    /// Prepares a put the session streams to this node's data port itself
    /// (a value too large for an actor message, or above the driver's
    /// stream threshold); replies the one-shot token. Only a driver's put
    /// hello may present it, never a transfer from another node, so the
    /// stored object counts as put by the session. Not idempotent.
    /// Errors as `expect`.
    caf::replies_to<put_atom, session_key, expect_atom>::with<std::string>,
    /// Prepares an inbound transfer that writes the persistent fs:// object
    /// `target` (atomically, owned by the session's principal, like a put
    /// to an fs:// target: not held by the session, never reference
    /// counted); replies the one-shot token. Checks at once that the
    /// principal may write `target` (inside a writable root, new or its
    /// own), and again when the value arrives; the push then replies
    /// `target`. Not idempotent. Errors, naming the URI: invalid_uri
    /// (malformed, relative, or a mem:// target), unsupported_scheme
    /// (unknown scheme, oss://, a node without fs roots),
    /// permission_denied (outside the roots, `.`/`..` components, a
    /// read-only root, another principal's object), resource_exhausted
    /// (tokens), unsupported (no data plane).
    caf::replies_to<expect_atom, session_key, std::string>::with<std::string>,
    /// Pushes an object the session holds (mem://), or an fs:// object its
    /// principal may read (its own, or in a read-only shared root), to
    /// worker `target_rank` under `token` (from the target's `expect`);
    /// replies the URI on the target: a new mem:// object held there by
    /// the token's session, or the fs:// target the token names. The
    /// target's address is the worker's own knowledge (objstore.cluster,
    /// or the endpoints the session named at hello, verified by asking the
    /// peer there), never a host:port from the request. A mem:// object
    /// stays pinned while it streams; an fs:// object is read off the
    /// worker's thread (by the store actor) first. Not idempotent. Errors:
    /// invalid_uri, unsupported_scheme, not_found, permission_denied,
    /// corrupt_data (fs://), invalid_argument (unknown rank), object_lost
    /// (target gone), timeout, the target's errors.
    caf::replies_to<push_atom, session_key, std::string, uint32_t,
                    std::string>::with<std::string>>;

/// A node's object store as an actor, for embedders and node-local use.
/// Runs detached, so file IO never blocks the worker. Holds no references:
/// objects stored through it live until erased.
using store_actor = caf::typed_actor<
    /// Stores a value under `target` (empty: new mem:// URI). Errors as
    /// object_store::put.
    caf::replies_to<put_atom, wire_value, std::string>::with<std::string>,
    /// Writes a persistent (fs://) object owned by `principal` if the
    /// access rule lets `principal` write it (file_backend::authorize).
    /// Errors as object_store::put, permission_denied.
    caf::replies_to<put_atom, wire_value, std::string,
                    std::string>::with<std::string>,
    /// Checks that `principal` may write the fs:// object `uri` (new, or
    /// its own, in a writable root; file_backend::authorize) without
    /// writing; replies `uri`. Idempotent. Errors: invalid_uri,
    /// unsupported_scheme (not fs://, or no fs roots), permission_denied.
    caf::replies_to<may_write_atom, std::string,
                    std::string>::with<std::string>,
    /// Returns a value. Idempotent. Errors: invalid_uri, not_found,
    /// corrupt_data, unsupported_scheme.
    caf::replies_to<get_atom, std::string>::with<wire_value>,
    /// Returns a value if `principal` may read it. Idempotent. Errors as
    /// get, permission_denied.
    caf::replies_to<get_atom, std::string, std::string>::with<wire_value>,
    /// Erases a value. Errors: invalid_uri, not_found.
    caf::replies_to<erase_atom, std::string>::with<bool>,
    /// Erases a value if `principal` may. Errors as erase, permission_denied.
    caf::replies_to<erase_atom, std::string, std::string>::with<bool>,
    /// Returns whether a value exists. Idempotent.
    caf::replies_to<exists_atom, std::string>::with<bool>,
    /// Lists the stored objects. Idempotent.
    caf::replies_to<objects_atom>::with<std::vector<object_record>>,
    /// Object and byte totals. Idempotent.
    caf::replies_to<stats_atom>::with<worker_stats>>;

/// Moves objects between nodes (worker to worker, never via the driver)
/// over the node's data plane (actors/data_plane.hpp). Node-local: the
/// worker hands it pinned values by pointer.
using transfer_actor = caf::typed_actor<
    /// Streams `value` to the data plane at host:port under `token`;
    /// replies the URI on the target. Errors: object_lost, timeout, the
    /// target's errors.
    caf::replies_to<push_atom, std::string, uint16_t, std::string,
                    wire_value>::with<std::string>>;

} // namespace objstore
