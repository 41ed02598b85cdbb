#pragma once

#include <caf/atom.hpp>

namespace objstore {

// CAF predefines get_atom, put_atom, close_atom and others in namespace caf;
// objstore's own atoms below. An atom holds at most 10 characters.

using caf::close_atom;
using caf::get_atom;
using caf::put_atom;

using hello_atom = caf::atom_constant<caf::atom("os_hello")>;
using run_atom = caf::atom_constant<caf::atom("os_run")>;
using fetch_atom = caf::atom_constant<caf::atom("os_fetch")>;
using release_atom = caf::atom_constant<caf::atom("os_release")>;
using stats_atom = caf::atom_constant<caf::atom("os_stats")>;
using objects_atom = caf::atom_constant<caf::atom("os_objects")>;
using erase_atom = caf::atom_constant<caf::atom("os_erase")>;
using exists_atom = caf::atom_constant<caf::atom("os_exists")>;
using ping_atom = caf::atom_constant<caf::atom("os_ping")>;
using transfer_atom = caf::atom_constant<caf::atom("os_xfer")>;
using flush_atom = caf::atom_constant<caf::atom("os_flush")>;
using expect_atom = caf::atom_constant<caf::atom("os_expect")>;
using push_atom = caf::atom_constant<caf::atom("os_push")>;
using adopt_atom = caf::atom_constant<caf::atom("os_adopt")>;
using cancel_atom = caf::atom_constant<caf::atom("os_cancel")>;
using deadline_atom = caf::atom_constant<caf::atom("os_dline")>;
using peer_atom = caf::atom_constant<caf::atom("os_peer")>;
using submit_atom = caf::atom_constant<caf::atom("os_submit")>;
using await_atom = caf::atom_constant<caf::atom("os_await")>;
using forget_atom = caf::atom_constant<caf::atom("os_forget")>;
using shuffle_atom = caf::atom_constant<caf::atom("os_shuffle")>;
using simp_atom = caf::atom_constant<caf::atom("os_simp")>;
using alive_atom = caf::atom_constant<caf::atom("os_alive")>;
using reconnect_atom = caf::atom_constant<caf::atom("os_reconn")>;
using streamed_atom = caf::atom_constant<caf::atom("os_stream")>;
using metrics_atom = caf::atom_constant<caf::atom("os_metrics")>;
using may_write_atom = caf::atom_constant<caf::atom("os_maywrit")>;

} // namespace objstore
