// The worker's reference table: holder and pin counts per mem:// object,
// "free" only when both are zero, unknown and excess releases counted and
// never driving a count negative, and per-session drops.

#include "actors/worker/reference_table.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "store/error.hpp"

namespace reference_table_test_file {
namespace {

using namespace objstore;

namespace {

uri mem(const std::string& id) {
  auto x = uri::parse("mem://" + id);
  EXPECT_TRUE(x) << describe(x.error());
  return *x;
}

constexpr session_id alice = 1;
constexpr session_id bob = 2;

class reference_table_test : public ::testing::Test {
protected:
  reference_table refs;
  reference_table::clock::time_point now = reference_table::clock::now();

  /// Holds of `s` on `id` as the table lists them (0 when none).
  uint32_t holds_of(const uri& id, session_id s) const {
    auto e = refs.find(id);
    if (e == nullptr)
      return 0;
    auto i = e->holders.find(s);
    return i == e->holders.end() ? 0 : i->second;
  }

  uint32_t pins_of(const uri& id) const {
    auto e = refs.find(id);
    return e == nullptr ? 0 : e->pins;
  }
};

TEST_F(reference_table_test, add_records_owner_size_flags_and_creation_time) {
  auto a = mem("a");
  refs.add(a, alice, 128, true, alice, now);
  auto e = refs.find(a);
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->holders, (std::map<session_id, uint32_t>{{alice, 1}}));
  EXPECT_EQ(e->pins, 0u);
  EXPECT_EQ(e->size_bytes, 128u);
  EXPECT_TRUE(e->revealed);
  EXPECT_EQ(e->put_by, alice);
  EXPECT_EQ(e->created, now);
  EXPECT_TRUE(refs.holds(a, alice));
  EXPECT_FALSE(refs.holds(a, bob));
  EXPECT_EQ(refs.find(mem("missing")), nullptr);
  EXPECT_FALSE(refs.holds(mem("missing"), alice));
}

TEST_F(reference_table_test, add_without_owner_registers_an_unheld_object) {
  auto a = mem("a");
  refs.add(a, 0, 8, false, 0, now);
  auto e = refs.find(a);
  ASSERT_NE(e, nullptr);
  EXPECT_TRUE(e->holders.empty());
  EXPECT_FALSE(e->revealed);
  EXPECT_EQ(e->put_by, 0u);
  EXPECT_FALSE(refs.holds(a, 0));
}

TEST_F(reference_table_test, each_hold_needs_its_own_release) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_TRUE(refs.hold(a, alice));
  EXPECT_TRUE(refs.hold(a, alice));
  EXPECT_EQ(holds_of(a, alice), 3u);
  EXPECT_FALSE(refs.release(a, alice));
  EXPECT_FALSE(refs.release(a, alice));
  EXPECT_EQ(holds_of(a, alice), 1u);
  EXPECT_TRUE(refs.holds(a, alice));
  EXPECT_TRUE(refs.release(a, alice)) << "the last hold frees the object";
  EXPECT_FALSE(refs.holds(a, alice));
  EXPECT_EQ(refs.releases(), 3u);
  EXPECT_EQ(refs.unknown_releases(), 0u);
}

TEST_F(reference_table_test,
       object_is_free_only_when_last_of_all_sessions_lets_go) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_TRUE(refs.hold(a, bob));
  EXPECT_FALSE(refs.release(a, alice)) << "bob still holds it";
  EXPECT_FALSE(refs.holds(a, alice));
  EXPECT_EQ(holds_of(a, bob), 1u);
  EXPECT_TRUE(refs.release(a, bob));
}

TEST_F(reference_table_test, hold_pin_and_unpin_of_unknown_objects_fail) {
  auto ghost = mem("ghost");
  EXPECT_FALSE(refs.hold(ghost, alice));
  EXPECT_FALSE(refs.pin(ghost));
  EXPECT_FALSE(refs.unpin(ghost));
  EXPECT_EQ(refs.find(ghost), nullptr) << "no entry is created on the way";
  EXPECT_TRUE(refs.entries().empty());
}

TEST_F(reference_table_test, a_pinned_object_outlives_its_last_release) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_TRUE(refs.pin(a));
  EXPECT_TRUE(refs.pin(a));
  EXPECT_EQ(pins_of(a), 2u);
  EXPECT_EQ(refs.pinned_objects(), 1u);
  EXPECT_FALSE(refs.release(a, alice)) << "pinned: not free yet";
  ASSERT_NE(refs.find(a), nullptr);
  EXPECT_FALSE(refs.unpin(a)) << "one pin left";
  EXPECT_TRUE(refs.unpin(a)) << "no holders, no pins: free";
  EXPECT_EQ(pins_of(a), 0u);
  EXPECT_EQ(refs.pinned_objects(), 0u);
}

TEST_F(reference_table_test, unpin_of_a_held_object_does_not_free_it) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_TRUE(refs.pin(a));
  EXPECT_FALSE(refs.unpin(a)) << "alice still holds it";
  EXPECT_TRUE(refs.holds(a, alice));
  EXPECT_TRUE(refs.release(a, alice));
}

TEST_F(reference_table_test, pin_counts_never_go_negative) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_FALSE(refs.unpin(a)) << "unpin without a pin";
  EXPECT_FALSE(refs.unpin(a));
  EXPECT_EQ(pins_of(a), 0u);
  EXPECT_TRUE(refs.pin(a));
  EXPECT_EQ(pins_of(a), 1u) << "excess unpins must not bank credit";
  EXPECT_FALSE(refs.release(a, alice)) << "the one pin still counts";
  EXPECT_TRUE(refs.unpin(a));
}

TEST_F(reference_table_test,
       releases_of_unknown_objects_are_counted_not_applied) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_FALSE(refs.release(mem("ghost"), alice));
  EXPECT_EQ(refs.unknown_releases(), 1u);
  EXPECT_EQ(refs.releases(), 0u);
  EXPECT_EQ(refs.find(mem("ghost")), nullptr);
  refs.count_unknown(); // e.g. a release naming no valid URI
  EXPECT_EQ(refs.unknown_releases(), 2u);
  EXPECT_EQ(holds_of(a, alice), 1u);
}

TEST_F(reference_table_test,
       double_release_is_counted_and_never_goes_negative) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_TRUE(refs.pin(a)); // keeps the entry after alice lets go
  EXPECT_FALSE(refs.release(a, alice));
  EXPECT_FALSE(refs.release(a, alice)) << "second release of a single hold";
  EXPECT_EQ(refs.releases(), 1u);
  EXPECT_EQ(refs.unknown_releases(), 1u);
  EXPECT_EQ(holds_of(a, alice), 0u);
  EXPECT_TRUE(refs.find(a)->holders.empty());
  // A new hold after the excess release starts from zero: one release
  // frees it again (no debt carried over).
  EXPECT_TRUE(refs.hold(a, alice));
  EXPECT_EQ(holds_of(a, alice), 1u);
  EXPECT_FALSE(refs.release(a, alice));
  EXPECT_TRUE(refs.unpin(a));
}

TEST_F(reference_table_test,
       release_by_a_session_that_does_not_hold_is_unknown) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  EXPECT_FALSE(refs.release(a, bob));
  EXPECT_EQ(refs.unknown_releases(), 1u);
  EXPECT_EQ(refs.releases(), 0u);
  EXPECT_EQ(holds_of(a, alice), 1u) << "bob cannot drop alice's hold";
  EXPECT_FALSE(refs.release_all(a, bob));
  EXPECT_EQ(refs.unknown_releases(), 2u);
  EXPECT_EQ(holds_of(a, alice), 1u);
}

TEST_F(reference_table_test, release_all_drops_every_hold_of_one_session) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  refs.hold(a, alice);
  refs.hold(a, alice);
  refs.hold(a, bob);
  EXPECT_FALSE(refs.release_all(a, alice)) << "bob still holds it";
  EXPECT_FALSE(refs.holds(a, alice));
  EXPECT_EQ(holds_of(a, bob), 1u);
  EXPECT_TRUE(refs.release_all(a, bob));
  EXPECT_FALSE(refs.release_all(a, bob)) << "nothing left to drop";
  EXPECT_EQ(refs.unknown_releases(), 1u);
  EXPECT_FALSE(refs.release_all(mem("ghost"), alice));
  EXPECT_EQ(refs.unknown_releases(), 2u);
}

TEST_F(reference_table_test, release_all_of_a_pinned_object_waits_for_unpin) {
  auto a = mem("a");
  refs.add(a, alice, 8, false, 0, now);
  refs.pin(a);
  EXPECT_FALSE(refs.release_all(a, alice));
  EXPECT_TRUE(refs.unpin(a));
}

TEST_F(reference_table_test, drop_session_frees_only_objects_nobody_else_uses) {
  auto only_alice = mem("only-alice");
  auto shared = mem("shared");
  auto pinned = mem("pinned");
  auto only_bob = mem("only-bob");
  refs.add(only_alice, alice, 1, false, 0, now);
  refs.hold(only_alice, alice); // two holds
  refs.add(shared, alice, 1, false, 0, now);
  refs.hold(shared, bob);
  refs.add(pinned, alice, 1, false, 0, now);
  refs.pin(pinned);
  refs.add(only_bob, bob, 1, false, 0, now);
  auto [freed, dropped] = refs.drop_session(alice);
  EXPECT_EQ(std::set<uri>(freed.begin(), freed.end()),
            (std::set<uri>{only_alice}));
  EXPECT_EQ(dropped, 4u) << "2 + 1 + 1 holds of alice";
  for (auto& id : {only_alice, shared, pinned, only_bob})
    EXPECT_FALSE(refs.holds(id, alice)) << id.str();
  EXPECT_EQ(holds_of(shared, bob), 1u);
  EXPECT_EQ(holds_of(only_bob, bob), 1u);
  EXPECT_EQ(pins_of(pinned), 1u);
  // Freed objects stay listed until the caller erased and forgot them.
  EXPECT_NE(refs.find(only_alice), nullptr);
  EXPECT_TRUE(refs.unpin(pinned)) << "free once its pin goes";
  auto again = refs.drop_session(alice);
  EXPECT_TRUE(again.first.empty());
  EXPECT_EQ(again.second, 0u) << "dropping a session twice drops nothing";
  auto stranger = refs.drop_session(99);
  EXPECT_TRUE(stranger.first.empty());
  EXPECT_EQ(stranger.second, 0u);
}

TEST_F(reference_table_test,
       forget_removes_the_entry_and_listing_shows_the_rest) {
  auto a = mem("a");
  auto b = mem("b");
  refs.add(a, alice, 10, true, alice, now);
  refs.add(b, bob, 20, false, 0, now);
  refs.pin(b);
  ASSERT_EQ(refs.entries().size(), 2u);
  EXPECT_EQ(refs.entries().at(a).size_bytes, 10u);
  EXPECT_TRUE(refs.entries().at(a).revealed);
  EXPECT_EQ(refs.entries().at(b).pins, 1u);
  EXPECT_EQ(refs.entries().at(b).holders,
            (std::map<session_id, uint32_t>{{bob, 1}}));
  EXPECT_TRUE(refs.release(a, alice));
  refs.forget(a);
  EXPECT_EQ(refs.find(a), nullptr);
  EXPECT_EQ(refs.entries().size(), 1u);
  EXPECT_EQ(refs.entries().count(b), 1u);
  // A release after forget is an unknown release, not a crash.
  EXPECT_FALSE(refs.release(a, alice));
  EXPECT_EQ(refs.unknown_releases(), 1u);
  refs.forget(a); // forgetting twice is harmless
  EXPECT_EQ(refs.entries().size(), 1u);
}

TEST_F(reference_table_test, pinned_objects_counts_objects_not_pins) {
  auto a = mem("a");
  auto b = mem("b");
  auto c = mem("c");
  refs.add(a, alice, 1, false, 0, now);
  refs.add(b, alice, 1, false, 0, now);
  refs.add(c, alice, 1, false, 0, now);
  refs.pin(a);
  refs.pin(a);
  refs.pin(b);
  EXPECT_EQ(refs.pinned_objects(), 2u);
  refs.unpin(a);
  EXPECT_EQ(refs.pinned_objects(), 2u);
  refs.unpin(a);
  EXPECT_EQ(refs.pinned_objects(), 1u);
  refs.unpin(b);
  EXPECT_EQ(refs.pinned_objects(), 0u);
}

} // namespace

} // namespace
} // namespace reference_table_test_file
